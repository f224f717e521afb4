"""Prometheus metrics at /metrics (Litestar's plugin): requests by route template, plus
events appended by type, LLM latency and tokens, and each read model's lag behind the store.

Events are counted from the log itself (the follower thread reads every new one), so the
figures cover every process writing to the store, not just this one."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from litestar.plugins.prometheus import PrometheusConfig, PrometheusController
from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from domain.chats import Chat

EVENTS = Counter("ledgerllm_events_appended_total", "Events appended to the store, by type", ["type"])
LLM_SECONDS = Histogram("ledgerllm_llm_seconds", "Model time per chat exchange", ["model", "status"],
                        buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120))
LLM_TOKENS = Counter("ledgerllm_llm_tokens_total", "Tokens sent to and received from models", ["model", "kind"])


def metrics_config() -> PrometheusConfig:
    # Route templates, not paths: ids and invite codes never become label values.
    return PrometheusConfig(app_name="ledgerllm", prefix="ledgerllm", group_path=True,
                            exclude=["^/metrics", "^/api/docs"])


class Metrics(PrometheusController):
    path = "/metrics"
    include_in_schema = False


def observe(topics: Iterable[str], events: Iterable[Any]) -> None:
    """Called by the follower with the topics of every new event and the decoded chats."""
    for topic in topics:
        EVENTS.labels(type=topic.rsplit(":", 1)[-1]).inc()
    for e in events:
        if isinstance(e, Chat.Recorded) and e.model:
            LLM_SECONDS.labels(model=e.model, status=e.status).observe(e.latency_ms / 1000)
            LLM_TOKENS.labels(model=e.model, kind="prompt").inc(e.prompt_tokens)
            LLM_TOKENS.labels(model=e.model, kind="completion").inc(e.completion_tokens)


class ProjectionLag(Collector):
    """Each read model's distance from the head of the store, and whether it is stalled at an
    event it cannot apply (1) or not (0), read at scrape time."""

    def __init__(self) -> None:
        self.runtime: Any = None

    def collect(self) -> Iterable[GaugeMetricFamily]:
        gauge = GaugeMetricFamily("ledgerllm_projection_lag_events", "Events the read model has not applied yet",
                                  labels=["projection"])
        stalled = GaugeMetricFamily("ledgerllm_projection_stalled",
                                    "1 while the read model is stopped at an event it cannot apply", labels=["projection"])
        if self.runtime is not None:
            head = self.runtime.ctx.ledger.recorder.max_notification_id() or 0
            for runner in self.runtime.runners:
                gauge.add_metric([runner.name], max(0, head - runner.position()))
                stalled.add_metric([runner.name], 0 if runner.stall is None else 1)
        yield gauge
        yield stalled


LAG = ProjectionLag()
REGISTRY.register(LAG)

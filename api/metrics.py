"""Prometheus metrics at /metrics (Litestar's plugin): requests by route template, plus
events appended by type, LLM latency and tokens, and each read model's lag behind the store.

Events are counted from the log itself (the follower thread reads every new one), so the
figures cover every process writing to the store, not just this one."""

from __future__ import annotations

import bisect
import collections
import itertools
import re
from collections.abc import Iterable
from typing import Any

from litestar.plugins.prometheus import PrometheusController
from litestar.types import Scope
from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from domain.chats import Chat

EVENTS = Counter("ledgerllm_events_appended_total", "Events appended to the store, by type", ["type"])
LLM_SECONDS = Histogram("ledgerllm_llm_seconds", "Model time per chat exchange", ["model", "status"],
                        buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120))
WEBHOOK_DELIVERIES = Counter("ledgerllm_webhook_deliveries_total",
                             "Webhook deliveries by this process: delivered, failed (each failed attempt), parked",
                             ["outcome"])
LLM_TOKENS = Counter("ledgerllm_llm_tokens_total", "Tokens sent to and received from models", ["model", "kind"])


# Requests, with the names and labels Litestar's Prometheus middleware gives them. Labels hold
# route templates, never paths, so ids and invite codes never become label values.
_LABELS = ["method", "path", "status_code", "app_name"]
_BUCKETS = Histogram.DEFAULT_BUCKETS  # 5 ms ... 10 s, then +Inf
_NOT_COUNTED = re.compile(r"^/(metrics|api/docs)")
NO_ROUTE = "<no route>"  # requests no route matched (404, 405)


class RequestCounts(Collector):
    """Requests by (method, route template, status): count and duration histogram, requests in
    progress, server errors. `api.requestlog.RequestEdge` calls `begin` and `end` around every
    HTTP request, on the event loop's thread; the numbers stay plain Python and become metric
    families when /metrics is scraped (prometheus_client's own metrics take a lock per update,
    five per request, which cost a trivial request more than all the rest of this module). A
    request in progress is counted under the route the router has found for it by then."""

    def __init__(self) -> None:
        self.done: dict[tuple[str, str, int], list[float]] = {}  # count, sum, then one per bucket
        self.live: dict[int, Scope] = {}

    def begin(self, scope: Scope) -> bool:
        if _NOT_COUNTED.match(scope["path"]):
            return False
        self.live[id(scope)] = scope
        return True

    def end(self, scope: Scope, status: int, seconds: float) -> None:
        self.live.pop(id(scope), None)
        key = (scope["method"], scope.get("path_template") or NO_ROUTE, status)
        row = self.done.get(key)
        if row is None:
            row = self.done[key] = [0, 0.0] + [0] * len(_BUCKETS)
        row[0] += 1
        row[1] += seconds
        row[2 + bisect.bisect_left(_BUCKETS, seconds)] += 1

    def collect(self) -> Iterable[CounterMetricFamily | GaugeMetricFamily | HistogramMetricFamily]:
        requests = CounterMetricFamily("ledgerllm_requests", "Total requests", labels=_LABELS)
        errors = CounterMetricFamily("ledgerllm_requests_error", "Total errors", labels=_LABELS)
        seconds = HistogramMetricFamily("ledgerllm_request_duration_seconds", "Request duration, in seconds",
                                        labels=_LABELS)
        running = GaugeMetricFamily("ledgerllm_requests_in_progress", "Total requests currently in progress",
                                    labels=_LABELS)
        rows = list(self.done.items())  # one C call each: no change seen half-way
        live = list(self.live.values())
        for (method, path, status), row in rows:
            labels = [method, path, str(status), "ledgerllm"]
            count, total, per_bucket = row[0], row[1], row[2:]
            requests.add_metric(labels, count)
            if status >= 500:
                errors.add_metric(labels, count)
            cumulative = list(itertools.accumulate(per_bucket))
            seconds.add_metric(labels, [(floatToGoString(b), n) for b, n in zip(_BUCKETS, cumulative)], total)
        in_progress = dict.fromkeys(((method, path) for (method, path, _), _ in rows), 0)  # 0s stay listed
        in_progress.update(collections.Counter((scope["method"], scope.get("path_template") or NO_ROUTE)
                                               for scope in live))
        for (method, path), n in in_progress.items():
            running.add_metric([method, path, "200", "ledgerllm"], n)
        yield from (requests, errors, seconds, running)


REQUESTS = RequestCounts()
REGISTRY.register(REQUESTS)


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


def webhook_outcome(kind: str) -> None:
    """Called by the webhook deliverer for each outcome."""
    WEBHOOK_DELIVERIES.labels(outcome=kind).inc()


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
        yield from self._webhooks()

    def _webhooks(self) -> Iterable[GaugeMetricFamily]:
        """Each webhook's distance from the head (events it has not taken or passed), and whether it is parked."""
        lag = GaugeMetricFamily("ledgerllm_webhook_lag_events", "Events a webhook has not been sent (or passed) yet",
                                labels=["webhook"])
        parked = GaugeMetricFamily("ledgerllm_webhook_parked", "1 while the webhook is parked after failures",
                                   labels=["webhook"])
        rt = self.runtime
        if rt is not None and rt.deliveries is not None:
            head = rt.ctx.ledger.recorder.max_notification_id() or 0
            try:
                states, hooks = rt.deliveries.states(), rt.ctx.accounts.webhooks()
            except Exception:  # noqa: BLE001 - a stalled accounts view or a store outage: no figures now
                states, hooks = {}, []
            for hook in hooks:
                state = states.get(hook.id)
                position = hook.start if state is None else state.position
                lag.add_metric([str(hook.id)], max(0, head - position))
                parked.add_metric([str(hook.id)], 1 if state is not None and state.parked else 0)
        yield lag
        yield parked


LAG = ProjectionLag()
REGISTRY.register(LAG)

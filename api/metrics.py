"""Prometheus metrics at /metrics (Litestar's plugin): requests by route template, plus
events appended by type, LLM latency and tokens, and each read model's lag behind the store.

Events are counted from the log itself (the follower thread reads every new one), so the
figures cover every process writing to the store, not just this one."""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from typing import Any

from litestar.plugins.prometheus import PrometheusController
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from api import requestlog
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
REQUESTS = Counter("ledgerllm_requests_total", "Total requests", _LABELS)
REQUEST_SECONDS = Histogram("ledgerllm_request_duration_seconds", "Request duration, in seconds", _LABELS)
IN_PROGRESS = Gauge("ledgerllm_requests_in_progress", "Total requests currently in progress", _LABELS,
                    multiprocess_mode="livesum")
ERRORS = Counter("ledgerllm_requests_error_total", "Total errors", _LABELS)
_NOT_COUNTED = re.compile(r"^/(metrics|api/docs)")


class RequestMetrics:
    """The outermost ASGI middleware: gives each request its id (`api.requestlog.begin`), then
    counts it and its duration. Each label set's metric children
    are looked up once and kept: `labels()` validates and locks on every call, which made
    Litestar's own middleware the largest cost of a trivial request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._children: dict[tuple[str, str, int], tuple[Any, Any, Any]] = {}
        self._running: dict[tuple[str, str], Any] = {}

    def _done(self, method: str, path: str, status: int) -> tuple[Any, Any, Any]:
        key = (method, path, status)
        children = self._children.get(key)
        if children is None:
            values = (method, path, str(status), "ledgerllm")
            children = self._children[key] = (REQUESTS.labels(*values), REQUEST_SECONDS.labels(*values),
                                              ERRORS.labels(*values) if status >= 500 else None)
        return children

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        requestlog.begin(scope)  # the request id first: one middleware layer less per request
        if _NOT_COUNTED.match(scope["path"]):
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope.get("path_template") or "<no route>"
        running = self._running.get((method, path))
        if running is None:
            running = self._running[(method, path)] = IN_PROGRESS.labels(method, path, "200", "ledgerllm")
        span = [time.perf_counter(), 0.0, 500]  # start, end, status

        async def measured_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                span[2] = message["status"]
            elif message["type"] == "http.response.body" and not span[1]:
                span[1] = time.perf_counter()
            await send(message)

        running.inc()
        try:
            await self.app(scope, receive, measured_send)
        finally:
            running.dec()
            count, seconds, errors = self._done(method, path, span[2])
            count.inc()
            seconds.observe((span[1] or time.perf_counter()) - span[0])
            if errors is not None:
                errors.inc()


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

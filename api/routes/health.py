"""Health for load balancers and operators: `GET /api/health` (the process answers) and
`GET /api/health/ready` (it can serve: the store answers, the models warmed up at start-up are
loaded, and no read model is stalled or behind by more than READY_MAX_LAG_EVENTS events or
READY_MAX_LAG_SECONDS seconds). Neither needs a credential; neither reveals more than names and positions."""

from __future__ import annotations

from datetime import datetime, timezone

import msgspec
from litestar import Controller, Response, get
from litestar.datastructures import State
from litestar.openapi.datastructures import ResponseSpec

from api.wiring import Runtime

class Alive(msgspec.Struct):
    status: str


class ProjectionHealth(msgspec.Struct):
    projection: str
    position: int
    behind: int
    stalled: bool
    stalledAt: int | None


class Readiness(msgspec.Struct):
    ready: bool
    reasons: list[str]
    # Serving, but without a helper: Redis unreachable (principals come from the read model,
    # rate limits per RATE_LIMIT_FALLBACK). Not a reason to leave the load balancer.
    degraded: list[str]
    head: int | None
    projections: list[ProjectionHealth]


class HealthController(Controller):
    path = "/api/health"
    tags = ["Health"]
    opt = {"exclude_from_auth": True}

    @get("/", operation_id="health", opt={"no_store": True})
    async def alive(self) -> Alive:
        """200 while the process lives."""
        return Alive("ok")

    @get("/ready", operation_id="healthReady", sync_to_thread=True,
         responses={503: ResponseSpec(Readiness, description="Not ready: `reasons` says why.")})
    def ready(self, state: State) -> Response[Readiness]:
        """200 when the store answers, the models warmed up at start-up (embedder, completions
        client) are loaded and every read model is caught up (within READY_MAX_LAG_EVENTS
        events and READY_MAX_LAG_SECONDS seconds) and not stalled; else 503 naming each
        reason. `degraded` names a cache that cannot be reached (Redis): still ready, since
        requests go on without it."""
        runtime = state.runtime
        reasons: list[str] = []
        try:
            head: int | None = runtime.ctx.ledger.recorder.max_notification_id() or 0
        except Exception as error:  # the store is down: say so, never a 500
            head = None
            reasons.append(f"event store unreachable: {type(error).__name__}")
        warmup = getattr(state, "warmup", None)
        if warmup is not None:
            reasons += warmup.reasons()
        projections = _read_models(runtime, head, reasons)
        probe = getattr(runtime.ctx.cache, "probe", None)
        degraded = [problem] if probe is not None and (problem := probe()) else []
        body = Readiness(not reasons, reasons, degraded, head, projections)
        return Response(body, status_code=200 if body.ready else 503)


def _read_models(runtime: Runtime, head: int | None, reasons: list[str]) -> list[ProjectionHealth]:
    """Each read model's position and lag behind `head` (None: the store is unreachable);
    adds to `reasons` each one stalled or lagging too far."""
    # A read-only server shows the store as it was at start-up: its views are meant to stay there.
    shown = head if head is None or runtime.ctx.read_only is None else min(head, runtime.ctx.read_only)
    projections = []
    for runner in runtime.runners:
        stall = runner.stall
        position = runner.position() if head is not None else 0
        behind = max(0, (shown or 0) - position)
        if stall is not None:
            reasons.append(f"read model {runner.name} is stalled at event {stall.position} ({stall.topic})")
        elif head is not None and behind:
            reasons += _lagging(runtime, runner.name, position, behind)
        projections.append(ProjectionHealth(runner.name, position, behind, stall is not None,
                                            stall.position if stall else None))
    return projections


def _lagging(runtime: Runtime, name: str, position: int, behind: int) -> list[str]:
    """Why a read model `behind` events behind the head is not ready: too many events, or the
    first one it has not applied was stored too long ago."""
    settings = runtime.settings
    if behind > settings.ready_max_lag_events:
        return [f"read model {name} is {behind} events behind (READY_MAX_LAG_EVENTS={settings.ready_max_lag_events})"]
    try:
        ledger = runtime.ctx.ledger
        [first] = ledger.recorder.select_notifications(start=position + 1, limit=1)
        age = (datetime.now(timezone.utc) - ledger.mapper.to_domain_event(first).timestamp).total_seconds()
    except Exception:  # the store went away meanwhile, or an event it cannot decode (a stall to come)
        return []
    if age > settings.ready_max_lag_seconds:
        return [f"read model {name} is {behind} events behind, the oldest stored {age:.0f} s ago "
                f"(READY_MAX_LAG_SECONDS={settings.ready_max_lag_seconds:g})"]
    return []

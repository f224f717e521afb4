"""Health for load balancers and operators: `GET /api/health` (the process answers) and
`GET /api/health/ready` (it can serve: the store answers, the models it loads at start-up are
loaded, and no read model is stalled or behind by more than READY_MAX_LAG_EVENTS events or
READY_MAX_LAG_SECONDS seconds). Neither needs a credential; neither reveals more than names,
positions and error class names."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import msgspec
from litestar import Controller, Response, get
from litestar.datastructures import State
from litestar.openapi.datastructures import ResponseSpec


class Alive(msgspec.Struct):
    status: str


class ProjectionHealth(msgspec.Struct):
    projection: str
    position: int
    behind: int
    # Age of the oldest event this read model has not applied yet (0 when caught up).
    behindSeconds: float
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
        """200 when the store answers, the embedding model and the completions client are loaded
        (when the server loads them at start-up), and every read model is caught up within
        READY_MAX_LAG_EVENTS events and READY_MAX_LAG_SECONDS seconds and not stalled; else 503
        naming each reason. `degraded` names a cache that cannot be reached (Redis): still
        ready, since requests go on without it."""
        runtime = state.runtime
        settings = runtime.settings
        reasons: list[str] = []
        warmup = state.get("warmup")
        if warmup is not None:
            reasons += warmup.problems()
        try:
            head: int | None = runtime.ctx.ledger.recorder.max_notification_id() or 0
        except Exception as error:  # the store is down: say so, never a 500
            head = None
            reasons.append(f"event store unreachable: {type(error).__name__}")
        projections = []
        for runner in runtime.runners:
            stall = runner.stall
            position = runner.position() if head is not None else 0
            behind = max(0, (head or 0) - position)
            seconds = _behind_seconds(runner, position) if behind and stall is None else 0.0
            if stall is not None:
                reasons.append(f"read model {runner.name} is stalled at event {stall.position} ({stall.topic})")
            elif head is not None and behind > settings.ready_max_lag_events:
                reasons.append(f"read model {runner.name} is {behind} events behind")
            elif seconds > settings.ready_max_lag_seconds:
                reasons.append(f"read model {runner.name} is {seconds:.1f} s behind")
            projections.append(ProjectionHealth(runner.name, position, behind, round(seconds, 3), stall is not None,
                                                stall.position if stall else None))
        probe = getattr(runtime.ctx.cache, "probe", None)
        degraded = [problem] if probe is not None and (problem := probe()) else []
        body = Readiness(not reasons, reasons, degraded, head, projections)
        return Response(body, status_code=200 if body.ready else 503)


def _behind_seconds(runner: Any, position: int) -> float:
    """How long ago the first event after `position` was recorded (0 if it cannot be read)."""
    try:
        [notification] = runner.app.recorder.select_notifications(start=position + 1, limit=1)
        recorded = runner.app.mapper.to_domain_event(notification).timestamp
    except Exception:  # gone, undecodable or the store is down (reported above): no age
        return 0.0
    return max(0.0, (datetime.now(timezone.utc) - recorded).total_seconds())

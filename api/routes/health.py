"""Health for load balancers and operators: `GET /api/health` (the process answers) and
`GET /api/health/ready` (it can serve: the store answers and no read model is stalled or far
behind). Neither needs a credential; neither reveals more than names and positions."""

from __future__ import annotations

import msgspec
from litestar import Controller, Response, get
from litestar.datastructures import State
from litestar.openapi.datastructures import ResponseSpec

# A read model this many events behind the head (after the follower's poll) is not ready.
READY_MAX_LAG_EVENTS = 1000


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
        """200 when the store answers and every read model is caught up (within
        READY_MAX_LAG_EVENTS) and not stalled; else 503 naming each reason. `degraded` names
        a cache that cannot be reached (Redis): still ready, since requests go on without it."""
        runtime = state.runtime
        reasons: list[str] = []
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
            if stall is not None:
                reasons.append(f"read model {runner.name} is stalled at event {stall.position} ({stall.topic})")
            elif head is not None and behind > READY_MAX_LAG_EVENTS:
                reasons.append(f"read model {runner.name} is {behind} events behind")
            projections.append(ProjectionHealth(runner.name, position, behind, stall is not None,
                                                stall.position if stall else None))
        probe = getattr(runtime.ctx.cache, "probe", None)
        degraded = [problem] if probe is not None and (problem := probe()) else []
        body = Readiness(not reasons, reasons, degraded, head, projections)
        return Response(body, status_code=200 if body.ready else 503)

"""Operators' repairs of a read model stopped at an event it cannot apply: skipping the event
is itself an event (with the actor and the reason), so the audit trail shows it."""

from __future__ import annotations

from application.ledger import Command, Context
from domain.projections import ProjectionControl, projection_control_uuid


class SkipEvent(Command, frozen=True, kw_only=True):
    projection: str
    position: int
    topic: str
    reason: str


def skip_event(ctx: Context, cmd: SkipEvent) -> int | None:
    """Record that read model `projection` passes the event at `position`; the store position."""
    actor = cmd.actor()

    def attempt() -> int | None:
        control = ctx.ledger.find(projection_control_uuid(cmd.projection)) or ProjectionControl.open(
            actor, cmd.projection)
        control.skip(actor, cmd.position, cmd.topic, cmd.reason)
        return ctx.save(control)

    return ctx.retrying(attempt)

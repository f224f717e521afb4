"""Operators' decisions about read models, recorded as events so the audit trail shows them.

A read model that cannot apply an event stops there (it never skips silently). After an
upgrade that fixes the cause, the operator retries; when an event can never be applied, the
operator skips it: `ProjectionControl.EventSkipped` names the read model, the position, the
actor and the reason, and the read model then passes that position without applying it."""

from __future__ import annotations

from uuid import NAMESPACE_URL, UUID, uuid5

from domain.audited import Audited
from domain.errors import InvalidInput
from domain.principal import Actor

MAX_REASON = 1000


def projection_control_uuid(projection: str) -> UUID:
    return uuid5(NAMESPACE_URL, f"ledgerllm:/projections/{projection}")


class ProjectionControl(Audited):
    class Opened(Audited.Created):
        projection: str

        def apply(self, control: ProjectionControl) -> None:
            control.projection = self.projection
            control.skipped = {}

    class EventSkipped(Audited.Event):
        projection: str
        position: int
        topic: str
        reason: str

        def apply(self, control: ProjectionControl) -> None:
            control.skipped[self.position] = self.reason

    @classmethod
    def open(cls, actor: Actor, projection: str) -> ProjectionControl:
        return cls._create(cls.Opened, id=projection_control_uuid(projection), **actor.stamp(), projection=projection)

    def skip(self, actor: Actor, position: int, topic: str, reason: str) -> None:
        """Let the read model pass the event at `position` without applying it."""
        reason = reason.strip()
        if not reason:
            raise InvalidInput("Say why the event is skipped (--reason TEXT): the audit log keeps it.")
        if len(reason) > MAX_REASON:
            raise InvalidInput(f"The reason must be at most {MAX_REASON} characters.")
        if position < 1:
            raise InvalidInput("The position must be a stored event's position (1 or more).")
        if position in self.skipped:
            raise InvalidInput(f"The event at position {position} is already skipped by {self.projection}.")
        self._record(self.EventSkipped, actor, projection=self.projection, position=position, topic=topic,
                     reason=reason)

"""The base of every aggregate: each of its events records who acted and in which request."""

from __future__ import annotations

from eventsourcing.domain import Aggregate

from domain.principal import Actor


class Audited(Aggregate):
    class Event(Aggregate.Event):
        actor_user_id: int
        actor_api_key_id: int | None
        correlation_id: str

    class Created(Event, Aggregate.Created):
        pass

    def _record(self, event_class: type[Audited.Event], actor: Actor, **fields: object) -> None:
        """Trigger `event_class` stamped with `actor`. Rules are checked before this call."""
        self.trigger_event(event_class, **actor.stamp(), **fields)

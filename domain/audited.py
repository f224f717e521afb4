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


def event_classes(aggregate: type[Audited]) -> list[type[Audited.Event]]:
    """The events an aggregate declares (each with an `apply`), not the generated bases.

    The library's metaclass replaces each declared event class with a subclass of it, so the
    `apply` sits one step up the MRO, on the class with the same qualified name."""
    found = []
    for member in vars(aggregate).values():
        if isinstance(member, type) and issubclass(member, Audited.Event) and any(
            "apply" in vars(c) for c in member.__mro__ if c.__qualname__ == member.__qualname__
        ):
            found.append(member)
    return found

"""Sequence: hands out the integer ids AnythingLLM clients see (keys, invites, ...).

The id is stored in the creating event, so a rebuild gives the same ids. The sequence is
saved atomically with the aggregate it numbered, so two racing creates cannot share an id."""

from __future__ import annotations

from uuid import NAMESPACE_URL, UUID, uuid5

from domain.audited import Audited
from domain.principal import Actor


def sequence_uuid(name: str) -> UUID:
    return uuid5(NAMESPACE_URL, f"ledgerllm:/sequences/{name}")


class Sequence(Audited):
    class Started(Audited.Created):
        name: str

        def apply(self, seq: Sequence) -> None:
            seq.name = self.name
            seq.last = 0

    class Advanced(Audited.Event):
        value: int

        def apply(self, seq: Sequence) -> None:
            seq.last = self.value


    @classmethod
    def start(cls, actor: Actor, name: str) -> Sequence:
        return cls._create(cls.Started, id=sequence_uuid(name), **actor.stamp(), name=name)

    class Reserved(Audited.Event):
        """A block of ids for one process to hand out without touching the store again."""

        first: int
        count: int

        def apply(self, seq: Sequence) -> None:
            seq.last = self.first + self.count - 1

    def take(self, actor: Actor) -> int:
        self._record(self.Advanced, actor, value=self.last + 1)
        return self.last

    def reserve(self, actor: Actor, count: int) -> range:
        first = self.last + 1
        self._record(self.Reserved, actor, first=first, count=count)
        return range(first, first + count)

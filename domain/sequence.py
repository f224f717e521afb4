"""Sequence: reserves the blocks of integer ids AnythingLLM clients see (keys, invites, ...).

Each process reserves a block (`Reserved`) and hands its ids out without touching the store
again; the id is stored in the creating event, so a rebuild gives the same ids. `Advanced`
(one id at a time) is what stores written before id blocks hold: it is still applied, never
recorded."""

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
        """One id taken (stores from before id blocks); applied on replay, no longer recorded."""

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

    def reserve(self, actor: Actor, count: int) -> range:
        first = self.last + 1
        self._record(self.Reserved, actor, first=first, count=count)
        return range(first, first + count)


# Event types only older stores hold: every projection still applies them; nothing records them.
RETIRED_EVENTS: tuple[type[Audited.Event], ...] = (Sequence.Advanced,)

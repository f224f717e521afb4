"""Public integer ids (users, keys, invites, workspaces, threads, chats, ...): assigned when an
event is made and stored in it, so a rebuild gives the same ids."""

from __future__ import annotations

import threading

from application.ledger import Context
from domain.principal import Actor
from domain.sequence import Sequence, sequence_uuid


def take_id(ctx: Context, name: str, actor: Actor) -> tuple[Sequence, int]:
    """The next id of `name`; save the returned sequence together with the new aggregate."""
    seq = ctx.ledger.find(sequence_uuid(name)) or Sequence.start(actor, name)
    return seq, seq.take(actor)


class IdBlocks:
    """Hands out ids from blocks reserved in the store, so that creating a record never
    contends on a shared counter. Ids are unique and stable (stored in the record's event);
    across processes they are not in time order (order by position for that)."""

    def __init__(self, name: str, block: int = 200) -> None:
        self.name = name
        self.block = block
        self._ids: list[int] = []
        self._lock = threading.Lock()

    def next(self, ctx: Context, actor: Actor) -> int:
        with self._lock:
            if not self._ids:
                self._ids = list(ctx.retrying(lambda: self._reserve(ctx, actor)))
            return self._ids.pop(0)

    def _reserve(self, ctx: Context, actor: Actor) -> range:
        seq = ctx.ledger.find(sequence_uuid(self.name)) or Sequence.start(actor, self.name)
        ids = seq.reserve(actor, self.block)
        ctx.save(seq)
        return ids

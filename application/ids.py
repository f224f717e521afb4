"""Public integer ids (users, keys, invites, workspaces, threads, chats, ...): assigned when an
event is made and stored in it, so a rebuild gives the same ids.

Ids come from blocks that a process reserves in the store (one `Sequence.Reserved` event per
block), so creating a record never contends on a shared counter: concurrent creations in one
process take ids from memory, and only block reservations (small, rare) race between processes.
Blocks start at one id and double up to a ceiling per kind, so a CLI command or a quiet server
wastes few ids and ids stay small integers like upstream's; ids from several processes are
unique but not in time order (order by position for that)."""

from __future__ import annotations

import threading
import weakref

from application.ledger import Context, Ledger
from domain.principal import Actor
from domain.sequence import Sequence, sequence_uuid

# Largest block one process reserves per kind (the most ids lost when it stops).
MAX_BLOCK = {"api_keys": 20, "threads": 50, "invites": 10, "embeds": 10}
DEFAULT_MAX_BLOCK = 20


class IdBlocks:
    """Hands out ids from blocks reserved in the store, so that creating a record never
    contends on a shared counter. Ids are unique and stable (stored in the record's event);
    across processes they are not in time order (order by position for that).

    `start` is the first block's size (default: `block`); each later block doubles, up to `block`."""

    def __init__(self, name: str, block: int = 200, start: int | None = None) -> None:
        self.name = name
        self.block = block
        self._size = block if start is None else max(1, min(start, block))
        self._ids: list[int] = []
        self._lock = threading.Lock()

    def next(self, ctx: Context, actor: Actor) -> int:
        with self._lock:
            if not self._ids:
                self._ids = list(ctx.retrying(lambda: self._reserve(ctx, actor)))
                self._size = min(self._size * 2, self.block)
            return self._ids.pop(0)

    def _reserve(self, ctx: Context, actor: Actor) -> range:
        seq = ctx.ledger.find(sequence_uuid(self.name)) or Sequence.start(actor, self.name)
        ids = seq.reserve(actor, self._size)
        ctx.save(seq)
        return ids


# One set of blocks per store (ledger) and kind in this process.
_blocks: weakref.WeakKeyDictionary[Ledger, dict[str, IdBlocks]] = weakref.WeakKeyDictionary()
_blocks_lock = threading.Lock()


def blocks_for(ledger: Ledger, name: str) -> IdBlocks:
    """This process's id blocks of `name` in `ledger`'s store."""
    with _blocks_lock:
        kinds = _blocks.setdefault(ledger, {})
        if name not in kinds:
            kinds[name] = IdBlocks(name, MAX_BLOCK.get(name, DEFAULT_MAX_BLOCK), start=1)
        return kinds[name]


def take_id(ctx: Context, name: str, actor: Actor) -> int:
    """The next id of `name`, from this process's reserved block (the block is saved already)."""
    return blocks_for(ctx.ledger, name).next(ctx, actor)

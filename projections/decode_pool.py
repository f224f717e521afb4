"""Decoding a rebuild's events in worker processes, while the rebuilding process applies them.

A rebuild spends about half its time decoding stored events: JSON, the sealed content's
AES-GCM, its data keys. That work does not depend on the read model, so worker processes do
it for consecutive ranges of positions: each opens the store itself (a Ledger from the same
environment, its own key ring), reads its range, and sends back the events the projection
handles as opened JSON (`MsgspecMapper.to_plain_state`). The rebuilding process constructs
each event from it and applies the ranges in order, so the read model sees exactly the
sequence a one-process rebuild sees. A range a worker could not decode (a damaged event) is
left to the rebuilding process, which reads it again and stops where the event is, as it
always does (`projections.stall`).

Workers are started with `spawn` (a fork would copy the caller's threads' locks and its open
connections) and used only for a log long enough to repay their start-up."""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import BrokenExecutor, Future, ProcessPoolExecutor
from typing import NamedTuple

from eventsourcing.application import Application

log = logging.getLogger("ledgerllm.projections")

MIN_EVENTS = 20_000  # fewer: the workers' start-up (about a second) costs more than they save
IN_MEMORY = "eventsourcing.popo"  # an in-memory store cannot be opened by another process


class Decoded(NamedTuple):
    """One range's outcome: `events`, the handled events as (position, topic, opened JSON) in
    order, and `read`, how many stored events the range held; `events` is None if the worker
    failed (the caller applies the range itself)."""

    start: int
    stop: int
    read: int
    events: list[tuple[int, str, bytes]] | None


def worker_count(app: Application, events: int, configured: int | None = None) -> int:
    """How many decoding workers a rebuild of `events` events uses: `configured` if given (0:
    none); else none for a short log or a single core, and one per core but the one applying."""
    if app.env.get("PERSISTENCE_MODULE") == IN_MEMORY or events <= 0:
        return 0
    if configured is not None:
        return configured
    if events < MIN_EVENTS:
        return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return cores - 1


class DecodePool:
    """Worker processes decoding ranges of `app`'s store: the events of `topics` (None: all)."""

    def __init__(self, app: Application, topics: frozenset[str] | None, workers: int) -> None:
        self.workers = workers
        self.executor = ProcessPoolExecutor(
            max_workers=workers, mp_context=multiprocessing.get_context("spawn"), initializer=_start,
            initargs=(type(app), dict(app.env), topics))

    def __enter__(self) -> DecodePool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)

    def ranges(self, first: int, last: int, size: int) -> Iterator[Decoded]:
        """The ranges of `size` positions from `first` to `last`, decoded, in order (a few are
        decoded ahead of the one handed out); fewer if the workers stop."""
        starts = iter(range(first, last + 1, size))
        pending: deque[tuple[int, int, Future[tuple[int, list[tuple[int, str, bytes]]]]]] = deque()

        def submit() -> None:
            start = next(starts, None)
            if start is not None:
                stop = min(start + size - 1, last)
                pending.append((start, stop, self.executor.submit(_decode, start, stop)))

        for _ in range(2 * self.workers + 1):
            submit()
        while pending:
            start, stop, future = pending.popleft()
            submit()
            try:
                read, events = future.result()
            except BrokenExecutor as error:  # a worker died (or could not start): the caller goes on alone
                log.warning("the rebuild's decoding workers stopped (%s); it goes on in one process", error)
                return
            except Exception as error:  # noqa: BLE001 - the caller reads the range itself and sees it
                log.info("a decoding worker could not decode events %d-%d (%s); applying them here", start, stop,
                         error)
                yield Decoded(start, stop, 0, None)
                continue
            yield Decoded(start, stop, read, events)


# in the worker process ------------------------------------------------------------------------

_ledger: Application | None = None
_topics: frozenset[str] | None = None


def _start(app_class: type[Application], env: dict[str, str], topics: frozenset[str] | None) -> None:
    global _ledger, _topics
    _ledger, _topics = app_class(env=env), topics


def _decode(start: int, stop: int) -> tuple[int, list[tuple[int, str, bytes]]]:
    from projections.runner import read_rows

    assert _ledger is not None
    rows = read_rows(_ledger.recorder, start, stop - start + 1, stop)
    plain = _ledger.mapper.to_plain_state  # type: ignore[attr-defined]
    return len(rows), [(r.id, r.topic, plain(r)) for r in rows if _topics is None or r.topic in _topics]

"""Runs projections: pulls new events from the store and applies them in batches.

The SQLite recorder cannot subscribe, so a follower thread (`projections.follower`) polls the
store's head and brings the views up to it. `ensure(position)` gives read-after-write: the
calling thread catches the view up itself instead of waiting for the follower."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, NamedTuple

from eventsourcing.application import AggregateNotFoundError, Application

from domain.projections import projection_control_uuid
from projections.base import SqlProjection
from projections.stall import ProjectionStalled, Stall, StallRecord, is_transient

log = logging.getLogger("ledgerllm.projections")

BATCH = 500
SKIP_WRITE_LIMIT = 1000  # ignored events are recorded as passed at least this often


class _Row(NamedTuple):
    """A stored event as `read_events` gives it: what a Notification holds (the aggregate id
    may be its text), for `wants` and the mapper."""

    id: int
    originator_id: Any
    originator_version: int
    topic: str
    state: bytes


class _ReadAhead:
    """Reads the batch after the one just returned in a background thread, so waiting for
    the store (PostgreSQL answering, SQLite reading its pages: both without the GIL) overlaps
    applying the batch. A batch read ahead is used only if it starts where the next read does
    and is full: a shorter one may be stale (events saved since), so it is read again."""

    def __init__(self, read: Callable[[int, int | None], list[Any]], batch: Callable[[], int]) -> None:
        self.read = read
        self.batch = batch
        self.key: tuple[int, int | None] | None = None
        self.thread: threading.Thread | None = None
        self.rows: list[Any] | None = None

    def get(self, start: int, stop: int | None) -> list[Any]:
        rows = None
        if self.thread is not None:
            self.thread.join()
            if self.key == (start, stop) and self.rows is not None and len(self.rows) == self.batch():
                rows = self.rows  # else (stale, or it failed) read again, and fail here if it must
            self.thread = self.rows = None
        if rows is None:
            rows = self.read(start, stop)
        if len(rows) == self.batch() and (stop is None or rows[-1].id < stop):
            self.key = (rows[-1].id + 1, stop)
            self.thread = threading.Thread(target=self._run, name="ledgerllm-read-ahead", daemon=True)
            self.thread.start()
        return rows

    def _run(self) -> None:
        try:
            self.rows = self.read(*self.key)  # type: ignore[misc]
        except Exception:  # the caller reads again itself, and sees the error
            self.rows = None


def read_rows(recorder: Any, start: int, limit: int, stop: int | None = None) -> list[Any]:
    """Up to `limit` stored events from position `start` (to `stop`), as notifications. The
    ledger's recorders also give them as plain rows (`read_events`), read without an object
    per row (a rebuild reads every event)."""
    read_events = getattr(recorder, "read_events", None)
    if read_events is None:
        return list(recorder.select_notifications(start=start, limit=limit, stop=stop))
    rows = [_Row(*r) for r in read_events(start - 1, limit)]
    return rows if stop is None else [r for r in rows if r.id <= stop]


class ProjectionLagging(RuntimeError):
    """The view did not reach a position in time (the store or the view is unavailable)."""


class ProjectionRunner:
    def __init__(self, app: Application, projection: SqlProjection) -> None:
        self.app = app
        self.projection = projection
        self.view = projection.view
        self.stalls = StallRecord(self.view, projection.name)
        self._lock = threading.Lock()
        self._known = 0  # a position the view is known to have reached
        # Events after the stored position that this view ignores, already looked at: they
        # are skipped without a write (one commit per ignored event batch cost an fsync).
        self._scanned = 0
        self._stored = 0  # the stored position last seen; going back means a rebuild
        self._stall: Stall | None = self.stalls.get()
        self.batch = BATCH  # events read and applied per transaction
        # Read the next batch while this one is applied (a rebuild). Not for live views: a
        # batch read ahead may miss events saved since, so read-after-write could wait longer.
        self.read_ahead = False
        self._ahead = _ReadAhead(self._read_now, lambda: self.batch)

    @property
    def name(self) -> str:
        return self.projection.name

    @property
    def stall(self) -> Stall | None:
        """Where this read model stopped, if it did (as last seen by this process)."""
        return self._stall

    def check(self) -> None:
        """Raise `ProjectionStalled` if this read model stopped at an event it cannot apply."""
        if self._stall is not None:
            raise ProjectionStalled(self._stall)

    def position(self) -> int:
        # Read only: this runs outside the lock (status routes, metrics), and writing `_known`
        # here could put back an older value over the follower's newer one for good.
        return max(self._known, self.view.position(self.app.name))

    def reset(self) -> None:
        """Empty the view and forget every position: the next catch-up rebuilds it."""
        with self._lock:
            self.view.reset(self.app.name)
            self.stalls.clear()
            self._stall = None
            self._known = self._scanned = self._stored = 0

    def retry(self) -> int:
        """Forget the stall and apply from where the view stopped (after a fix); return the position."""
        with self._lock:
            self.stalls.clear()
            self._stall = None
        return self.catch_up()

    def catch_up(self, until: int | None = None, progress: Callable[[int], None] | None = None,
                 stop: int | None = None, given: list[Any] | None = None) -> int:
        """Apply every stored event after the view's position; return the position.

        `until`: return once the view has reached it (it may go further, a batch at a time).
        `stop`: apply no event after it (a view as it was at that position). An event the
        projection cannot apply stops it there: the stall is recorded, nothing after it is
        applied, and this returns the position before it (see `projections.stall`). `given`:
        stored events the caller read already, in order and none left out; used instead of a
        read when they hold the next one."""
        with self._lock:
            while True:
                stored = self.view.position(self.app.name)
                if stored < self._stored:  # rebuilt elsewhere: nothing known holds any more
                    self._known = self._scanned = 0
                self._stored = stored
                start = max(stored, self._scanned)
                if stop is not None and start >= stop:
                    break
                if given and given[0].id <= start + 1 <= given[-1].id and stop is None:
                    notifications = [n for n in given if n.id > start]
                else:
                    notifications = self._read(start + 1, stop)
                given = None
                if not notifications:
                    break
                if not self._may_continue():
                    break
                last_id = notifications[-1].id
                try:
                    moved = self._apply(stored, notifications)
                except Exception as error:
                    if is_transient(error):
                        raise
                    self._apply_one_by_one(stored, notifications)
                    break
                if not moved:
                    continue  # another runner moved the view first: start again from its position
                self._scanned = self._known = max(self._known, last_id)
                if progress:
                    progress(len(notifications))
                if len(notifications) < self.batch or (until is not None and last_id >= until) or last_id == stop:
                    break
            # The stored position as last read or written here: one statement less per catch-up
            # (each write request's read-after-write runs one). Another runner may have gone
            # further since; then this reports less than the view has, never more.
            self._known = max(self._known, self._stored)
            return self._known

    def apply_decoded(self, start: int, stop: int, events: list[Any]) -> bool:
        """Apply events decoded elsewhere (a rebuild's workers): `events`, (event, position) in
        order, are those this projection wants among the stored events from `start` to `stop`.
        In one transaction; True once the view has reached `stop`. False, with nothing
        applied, if the events before `start` are not all applied here, another runner moved
        the view, it is stalled, or it cannot apply one of them: the caller then catches up
        over the range as usual, which finds and records the event it stops at."""
        with self._lock:
            if self._stall is not None or max(self._known, self._scanned) != start - 1:
                return False
            try:
                if not self.view.process_batch(self.app.name, self._stored, events, self.projection.apply, stop):
                    return False
            except Exception as error:
                if is_transient(error):
                    raise
                return False
            self._stored = self._scanned = self._known = stop
            return True

    def _apply(self, stored: int, notifications: list[Any]) -> bool:
        """Apply one batch in one transaction; False if another runner got there first."""
        to_event, wants = self.app.mapper.to_domain_event, self.projection.wants
        items = [(to_event(n), n.id) for n in notifications if wants(n)]
        last_id = notifications[-1].id
        if items or last_id - stored >= SKIP_WRITE_LIMIT:
            # The batch's position covers the ignored events before it too.
            if not self.view.process_batch(self.app.name, stored, items, self.projection.apply, last_id):
                return False
            self._stored = last_id
        return True

    def _apply_one_by_one(self, stored: int, notifications: list[Any]) -> None:
        """A batch failed: apply its events one transaction each, up to the one that fails;
        pass it if an operator skipped it, else record the stall there."""
        for n in notifications:
            if not self.projection.wants(n):
                continue
            try:
                event = self.app.mapper.to_domain_event(n)
                if not self.view.process_batch(self.app.name, stored, [(event, n.id)], self.projection.apply, n.id):
                    return  # another runner moved the view: the next catch-up starts from there
            except Exception as error:
                if is_transient(error):
                    raise
                if not self._skipped(n.id):
                    self._stall = self.stalls.record(n.id, n.topic, error)
                    log.error("read model %s stalled at event %d (%s): %s", self.name, n.id, n.topic, self._stall.error)
                    return
                self.view.process_batch(self.app.name, stored, [], self.projection.apply, n.id)
                log.warning("read model %s passed event %d, skipped by an operator", self.name, n.id)
            stored = self._stored = self._known = n.id

    def _may_continue(self) -> bool:
        """While stalled: go on once the stall is cleared (a retry elsewhere) or its event skipped."""
        if self._stall is None:
            return True
        self._stall = self.stalls.get()
        if self._stall is not None and self._skipped(self._stall.position):
            self.stalls.clear()
            self._stall = None
        return self._stall is None

    def _skipped(self, position: int) -> bool:
        """An operator recorded `ProjectionControl.EventSkipped` for this read model and position."""
        try:
            control = self.app.repository.get(projection_control_uuid(self.name))
        except AggregateNotFoundError:
            return False
        return position in control.skipped

    def _read(self, start: int, stop: int | None) -> list[Any]:
        if self.read_ahead:
            return self._ahead.get(start, stop)
        return self._read_now(start, stop)

    def _read_now(self, start: int, stop: int | None) -> list[Any]:
        return read_rows(self.app.recorder, start, self.batch, stop)

    def pass_unwanted(self, rows: list[Any]) -> bool:
        """The follower read the events after its last round once for every view (`rows`, in
        order, none left out). True if this view has nothing to do for them: it is already past
        them, or it had reached the one before them and wants none of them (it then counts as
        having reached the last, without a statement to its table). False: catch up."""
        if not rows or self._known >= rows[-1].id:
            return True
        if not self._lock.acquire(blocking=False):
            return False  # a request is catching this view up: the follower does the same after it
        try:
            last = rows[-1].id
            if (self._stall is not None or self._known < rows[0].id - 1 or last - self._stored >= SKIP_WRITE_LIMIT
                    or any(self.projection.wants(r) for r in rows)):
                return False
            self._scanned = self._known = last
            return True
        finally:
            self._lock.release()

    def ensure(self, position: int | None, timeout: float = 10.0) -> None:
        """Return once the view has applied the event at `position` (read-after-write)."""
        if position is None or self._known >= position:
            return
        deadline = time.monotonic() + timeout
        while self.catch_up(until=position) < position:
            self.check()
            if time.monotonic() > deadline:
                raise ProjectionLagging(f"projection {self.name} did not reach position {position}")
            time.sleep(0.005)

"""The follower: a background thread that keeps a process's read models caught up with the
store (events written by this process and by others) and tells callbacks of new events.

The SQLite recorder cannot subscribe, so it polls the store's head every `poll` seconds."""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from eventsourcing.application import Application

from projections.runner import BATCH, ProjectionRunner, read_rows

log = logging.getLogger("ledgerllm.projections")

IDLE_ROUND_SECONDS = 1.0  # the follower visits every view at least this often, events or not


class Follower:
    """A background thread that keeps runners caught up and calls `on_events` with new events
    of the given topics (e.g. to drop cached principals when a key is revoked elsewhere)."""

    def __init__(
        self,
        app: Application,
        runners: list[ProjectionRunner],
        poll: float,
        topics: frozenset[str] = frozenset(),
        on_events: Callable[[list[Any]], None] | None = None,
        also: list[Callable[[], None]] | None = None,
        on_topics: Callable[[list[str], list[Any]], None] | None = None,
        observed_topics: frozenset[str] = frozenset(),
    ) -> None:
        self.app = app
        self.runners = runners
        self.poll = poll
        self.topics = topics
        self.on_events = on_events
        self.also = also or []
        self.on_topics = on_topics  # every new event's topic, plus the decoded `observed_topics` ones
        self.observed_topics = observed_topics
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._seen = 0

    def start(self) -> None:
        self._seen = self.app.recorder.max_notification_id() or 0
        self._thread = threading.Thread(target=self._run, name="ledgerllm-follower", daemon=True)
        self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        """Each poll asks the store for its head only. When it moved by at most a batch, the new
        events are read once and each view looks at them in memory (`pass_unwanted`): only a
        view that wants one of them catches up, and the `also` steps run only after a view
        moved. Every view catches up fully after a failure, when the head moved further or could
        not be read, and at least every IDLE_ROUND_SECONDS (a view rebuilt or repaired by another
        process). So an idle server runs one statement per poll, and a chat's events cost
        statements only in the views that apply them."""
        last_head: int | None = None
        last_round = 0.0
        failed = False
        while not self._stop.is_set():
            head = self._head()
            now = time.monotonic()
            full = failed or head is None or last_head is None or now - last_round >= IDLE_ROUND_SECONDS
            if full or head != last_head:
                rows = None
                if full or head - last_head > BATCH:  # type: ignore[operator]
                    last_round = now
                else:
                    rows = self._read_after(last_head)  # type: ignore[arg-type]
                failed = self._round(rows)
                last_head = None if failed else max(head, rows[-1].id if rows else 0)  # type: ignore[type-var]
            self._wake.wait(1.0 if failed else self.poll)
            self._wake.clear()

    def _round(self, rows: list[Any] | None) -> bool:
        """Bring the callbacks and every view up to date, each on its own (one failing view must
        not hold up the others); True if a step failed. `rows`: every event since the last round,
        read once, or None to have each view read for itself."""
        steps: list[Callable[[], Any]] = [lambda: self._notify(rows)]
        moved = rows is None
        for runner in self.runners:
            if rows is None or not runner.pass_unwanted(rows):
                steps.append(functools.partial(runner.catch_up, given=rows))
                moved = True
        if moved:
            steps += self.also
        failed = False
        for step in steps:
            try:
                step()
            except Exception:  # keep following: a transient store error must not stop the views
                log.exception("projection follower step failed; retrying")
                failed = True
        return failed

    def _read_after(self, position: int) -> list[Any] | None:
        """The events after `position` (at most a batch), or None if the store could not be read
        (every view then tries for itself, and the round reports what failed)."""
        try:
            return read_rows(self.app.recorder, position + 1, BATCH)
        except Exception:  # noqa: BLE001 - the store is away: the follower must keep running
            log.warning("projection follower could not read new events; every view reads for itself")
            return None

    def _head(self) -> int | None:
        try:
            return self.app.recorder.max_notification_id() or 0
        except Exception:  # noqa: BLE001 - the store is away: the round below reports it
            return None

    def _notify(self, rows: list[Any] | None = None) -> None:
        """Hand new events to the callbacks; an event counts as seen only once they succeeded
        (a cache that could not be told of a revocation is told again on the next round).
        `rows`: the events after the last round, if the follower read them already."""
        given = rows is not None and (not rows or rows[0].id <= self._seen + 1 <= rows[-1].id + 1)
        while True:
            if given:
                notifications = [n for n in rows if n.id > self._seen]  # type: ignore[union-attr]
            else:
                notifications = self.app.recorder.select_notifications(start=self._seen + 1, limit=BATCH)
            if not notifications:
                return
            if self.on_events:
                events = [self.app.mapper.to_domain_event(n) for n in notifications if n.topic in self.topics]
                if events:
                    self.on_events(events)
            if self.on_topics:
                observed = [self.app.mapper.to_domain_event(n) for n in notifications
                            if n.topic in self.observed_topics]
                self.on_topics([n.topic for n in notifications], observed)
            self._seen = notifications[-1].id
            if given:
                return  # what came after them is the next round's

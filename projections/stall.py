"""Where a read model stopped: the durable record of an event it could not apply.

A projection that fails on an event stops at that position (it never skips silently) and
writes one row beside its own tables (`stall` in its SQLite file, `<name>_stall` in
PostgreSQL): the position, the event's topic, the error and when. Every process sees it, so
status commands, metrics and readiness report the stall wherever it happened, and reads of
that read model fail closed until an operator retries (after an upgrade) or skips the event."""

from __future__ import annotations

import sqlite3
import traceback
from datetime import datetime, timezone
from typing import Any

import msgspec
from eventsourcing.persistence import (
    ConnectionPoolClosedError, ConnectionUnavailableError, InterfaceError, OperationalError,
)

from domain.timefmt import iso

MAX_ERROR = 2000


class Stall(msgspec.Struct, frozen=True):
    projection: str
    position: int
    topic: str
    error: str
    recorded_at: str


class ProjectionStalled(RuntimeError):
    """A read model stopped at an event it cannot apply; reads of it fail closed."""

    def __init__(self, stall: Stall) -> None:
        self.stall = stall
        super().__init__(
            f"The {stall.projection} read model is stalled at event {stall.position} ({stall.topic}): "
            f"an operator must run `ledgerllm projections retry {stall.projection}` after fixing the "
            f"cause, or `ledgerllm projections skip {stall.projection} {stall.position} --reason TEXT`.")


def is_transient(error: BaseException) -> bool:
    """A failure of the connection or a lock, not of the event: try the same event again later."""
    if isinstance(error, (InterfaceError, ConnectionUnavailableError, ConnectionPoolClosedError,
                          ConnectionError, TimeoutError)):
        return True
    if isinstance(error, (OperationalError, sqlite3.OperationalError)):
        text = str(error).lower()
        return "no such" not in text and "syntax" not in text
    return type(error).__module__.startswith("psycopg") and type(error).__name__ in (
        "OperationalError", "InterfaceError")


def describe(error: BaseException) -> str:
    """The error as an operator reads it: type, message and the innermost frame."""
    frames = traceback.extract_tb(error.__traceback__)
    where = f" at {frames[-1].filename}:{frames[-1].lineno}" if frames else ""
    return f"{type(error).__name__}: {error}{where}"[:MAX_ERROR]


class StallRecord:
    """The stall row of one read model's view (a TrackingRecorder with `read`/`write`)."""

    def __init__(self, view: Any, projection: str) -> None:
        self.view = view
        self.projection = projection
        tracking = getattr(view, "tracking_table_name", "tracking")
        self.table = tracking[: -len("tracking")] + "stall" if tracking.endswith("tracking") else tracking + "_stall"
        self._created = False

    def _create(self, tx: Any) -> None:
        if not self._created:
            tx.execute(f"CREATE TABLE IF NOT EXISTS {self.table} (projection TEXT PRIMARY KEY,"
                       " position BIGINT NOT NULL, topic TEXT NOT NULL, error TEXT NOT NULL, recorded_at TEXT NOT NULL)")
            self._created = True

    def get(self) -> Stall | None:
        with self.view.write() as tx:  # write: the first read may have to create the table
            self._create(tx)
            row = tx.one(f"SELECT projection, position, topic, error, recorded_at FROM {self.table}"
                         " WHERE projection = ?", (self.projection,))
        return None if row is None else Stall(**row)

    def record(self, position: int, topic: str, error: BaseException) -> Stall:
        stall = Stall(self.projection, position, topic, describe(error), iso(datetime.now(timezone.utc)))
        with self.view.write() as tx:
            self._create(tx)
            tx.execute(f"DELETE FROM {self.table} WHERE projection = ?", (self.projection,))
            tx.execute(f"INSERT INTO {self.table} (projection, position, topic, error, recorded_at)"
                       " VALUES (?, ?, ?, ?, ?)", (stall.projection, stall.position, stall.topic, stall.error,
                                                   stall.recorded_at))
        return stall

    def clear(self) -> None:
        with self.view.write() as tx:
            self._create(tx)
            tx.execute(f"DELETE FROM {self.table} WHERE projection = ?", (self.projection,))

"""Read models as eventsourcing projections, written in SQL that runs on SQLite and PostgreSQL.

A `SqlProjection` names its tables and maps event classes to handlers that write rows through
a `Tx`. Its view is an eventsourcing `TrackingRecorder` (SQLite or PostgreSQL), so the rows
and the tracking position commit in one transaction: a crash never applies an event twice or
skips one. `process_batch` takes a lock first and re-reads the position inside the
transaction, so several runners of one projection (server workers, a CLI) can never apply
the same event twice: the one that loses the race rolls back and moves on."""

from __future__ import annotations

import logging
import re
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, contextmanager
from typing import Any, ClassVar

from eventsourcing.persistence import Notification, Tracking, TrackingRecorder
from eventsourcing.postgres import PostgresTrackingRecorder
from eventsourcing.projection import Projection
from eventsourcing.sqlite import SQLiteTrackingRecorder
from eventsourcing.utils import get_topic
from psycopg.sql import SQL, Identifier

from domain.users import User
from domain.timefmt import iso_or_none as iso  # noqa: F401  (handlers store times as upstream sends them)
from projections.tx import Tx  # handlers write through it: `from projections.base import Tx`

log = logging.getLogger("ledgerllm")


class SqlView:
    """Methods shared by the SQLite and PostgreSQL views of a projection."""

    schema: ClassVar[list[str]] = []
    tables: ClassVar[list[str]] = []
    after_reset: ClassVar[list[str]] = []  # statements run by a reset after the tables are emptied
    deferred: ClassVar[list[str]] = []  # CREATE INDEX statements not yet run (a scratch copy's)
    bulk: ClassVar[bool] = False
    postgres: ClassVar[bool] = False
    datastore: Any
    _insert_tracking: Callable[[Any, Tracking], None]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # A scratch copy's statements left for `finish`; None: run them at once.
        self._later: list[tuple[str, tuple[Any, ...]]] | None = [] if self.bulk else None

    @contextmanager
    def read(self) -> Iterator[Tx]:
        with self.datastore.transaction(commit=False) as cursor:
            yield Tx(cursor, self.postgres)

    @contextmanager
    def write(self) -> Iterator[Tx]:
        with self.datastore.transaction(commit=True) as cursor:
            yield Tx(cursor, self.postgres)

    def lock_and_position(self, tx: Tx, app_name: str) -> int:
        raise NotImplementedError

    def process_batch(
        self, app_name: str, expected_position: int, items: Sequence[tuple[Any, int]],
        apply: Callable[[Tx, Any, int], None], last_id: int,
    ) -> bool:
        """Apply `items` (event, notification id) and record `last_id`, if nobody moved first.

        The handlers' inserts go out as multi-row writes (see `Tx`): a 1M-event chats rebuild
        spent most of its time in one INSERT per event."""
        with self.datastore.transaction(commit=True) as cursor:
            if self.lock_and_position(Tx(cursor, self.postgres), app_name) != expected_position:
                return False  # another runner got there first; it has applied these events
            tx = Tx(cursor, self.postgres, batched=True, later=None if self._later is None else [])
            for event, position in items:
                apply(tx, event, position)
            tx.flush()
            self._insert_tracking(cursor, Tracking(app_name, last_id))
        if tx.later:  # committed: this batch's part of the work left for `finish`
            self._later.extend(tx.later)  # type: ignore[union-attr]
        if not self.bulk and any(isinstance(event, User.Erased) for event, _ in items):
            self.scrub()
        return True

    def scrub(self) -> None:
        """After an erasure overwrote rows: leave no old copy of them in the view's files."""

    def position(self, app_name: str) -> int:
        return self.max_tracking_id(app_name) or 0  # type: ignore[attr-defined]

    def unfinished(self) -> tuple[int, int]:
        """What `finish` has left to do: (indexes to make, statements to run)."""
        return (0, 0) if self._later is None else (len(self.deferred), len(self._later))

    def finish(self) -> None:
        """Complete a scratch copy filled from the events: make the indexes it was filled
        without (one sort each, not a random insert per row), then run the statements its
        handlers left for later, in one transaction. From then on it is like any view.
        Does nothing on a view that is complete."""
        if self._later is None:
            return
        with self.write() as tx:
            for statement in self.deferred:
                tx.execute(statement)
            for sql, params in self._later:
                tx.execute(sql, params)
        self._later = None

    def reset(self, app_name: str) -> None:
        """Delete every row and the position: the next catch-up rebuilds from the first event."""
        with self.write() as tx:
            self.lock_and_position(tx, app_name)
            for table in self.tables:
                tx.execute(f"DELETE FROM {table}")
            for statement in self.after_reset:
                tx.execute(statement)
            tx.execute(f"DELETE FROM {self.tracking_table} WHERE application_name = ?", (app_name,))

    @property
    def tracking_table(self) -> str:
        """The table where this view records how far it has applied the log."""
        return getattr(self, "tracking_table_name", "tracking")


class SQLiteSqlView(SqlView, SQLiteTrackingRecorder):
    postgres = False

    def construct_create_table_statements(self) -> list[str]:
        return super().construct_create_table_statements() + list(self.schema)

    def scrub(self) -> None:
        """Every connection runs with secure_delete (infrastructure/sqlite_store.py), so the
        overwritten text is zeroed in the pages written now; the older page versions still sit
        in the WAL and in the main file until a checkpoint copies the new pages over them and
        truncates the WAL (waiting for readers up to the busy timeout)."""
        pool = self.datastore.pool
        if pool.is_sqlite_memory_mode:
            return
        with closing(sqlite3.connect(pool.db_name, uri=True, isolation_level=None,
                                     timeout=pool.lock_timeout or 30)) as c:
            busy = c.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
        if busy:
            log.warning("%s: the WAL could not be truncated after an erasure (readers); the next checkpoint "
                        "overwrites the old pages", pool.db_name)

    def lock_and_position(self, tx: Tx, app_name: str) -> int:
        tx.execute(
            "INSERT INTO tracking VALUES (?, 0) ON CONFLICT (application_name) DO NOTHING", (app_name,)
        )
        return tx.scalar("SELECT notification_id FROM tracking WHERE application_name = ?", (app_name,))


class PostgresSqlView(SqlView, PostgresTrackingRecorder):
    postgres = True

    def __init__(self, datastore: Any, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)
        self.sql_create_statements.extend(SQL(_unlogged(s) if self.bulk else s)  # type: ignore[arg-type]
                                          for s in self.schema)

    def lock_and_position(self, tx: Tx, app_name: str) -> int:
        table = self.tracking_table_name
        # Keyed by schema too: a rebuild's scratch copy must not wait for the live view's lock.
        tx.execute("SELECT pg_advisory_xact_lock(hashtext(?))", (f"{self.datastore.schema}.{table}",))
        tx.cursor.execute(
            SQL("INSERT INTO {} VALUES (%s, 0) ON CONFLICT (application_name) DO NOTHING").format(
                Identifier(table)
            ),
            (app_name,),
        )
        tx.cursor.execute(
            SQL("SELECT notification_id FROM {} WHERE application_name = %s").format(Identifier(table)),
            (app_name,),
        )
        return tx.cursor.fetchone()["notification_id"]


def _unlogged(statement: str) -> str:
    """A scratch copy's tables skip PostgreSQL's WAL: a crash loses them, and a rebuild that
    fails throws them away anyway. The swap copies their rows into the logged live tables."""
    return re.sub(r"^\s*CREATE\s+TABLE\b", "CREATE UNLOGGED TABLE", statement, flags=re.IGNORECASE)


_SECONDARY_INDEX = re.compile(r"\s*CREATE\s+INDEX\s+(?:IF\s+NOT\s+EXISTS\s+)?(\w+)", re.IGNORECASE)


def secondary_index(statement: str) -> str | None:
    """The index a `CREATE INDEX` statement makes (not a UNIQUE one: those are constraints
    that inserts and `ON CONFLICT` rely on), else None."""
    match = _SECONDARY_INDEX.match(statement)
    return match[1] if match else None


def view_classes(name: str, schema: list[str], tables: list[str], after_reset: list[str] | None = None,
                 deferred: Sequence[str] = (), bulk: bool = False) -> dict[str, type[TrackingRecorder]]:
    """The SQLite and PostgreSQL view classes of one projection. `deferred`: CREATE INDEX
    statements left out of the schema, made by `SqlView.finish`; `bulk`: a scratch
    copy (PostgreSQL: unlogged tables)."""
    attrs = {"schema": [s for s in schema if s not in deferred], "tables": tables,
             "after_reset": after_reset or [], "deferred": list(deferred), "bulk": bulk}
    return {
        "sqlite": type(f"{name}SQLiteView", (SQLiteSqlView,), attrs),
        "postgres": type(f"{name}PostgresView", (PostgresSqlView,), attrs),
    }


Handler = Callable[[Any, Tx, Any], None]


class SqlProjection(Projection[Any]):
    """A read model: `handlers` maps event classes to methods `(self, tx, event)`; the event's
    position in the store is `self.position` while a handler runs.

    Subclasses set `name`, `schema` (CREATE statements in SQL both backends accept) and
    `tables` (in the order a reset empties them; rebuilds and `ledgerllm verify` replace and
    compare exactly these), and register handlers with `@handles`."""

    schema: ClassVar[list[str]] = []
    tables: ClassVar[list[str]] = []
    after_reset: ClassVar[list[str]] = []
    # Tables that outlive a rebuild (a cache): a rebuild starts from their rows and keeps its own.
    kept: ClassVar[list[str]] = []
    # Tables a rebuild neither empties nor compares (bookkeeping such as a generation counter).
    meta_tables: ClassVar[list[str]] = []
    handlers: ClassVar[dict[type, Handler]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.handlers = {}
        for attr in vars(cls).values():
            for event_class in getattr(attr, "_handles", ()):
                cls.handlers[event_class] = attr
        cls.handled_topics = frozenset(get_topic(c) for c in cls.handlers)

    handled_topics: ClassVar[frozenset[str]] = frozenset()

    # Indexes the handlers' own statements find rows by: a scratch copy keeps them while it
    # is filled (its other secondary indexes are made once, at the end).
    handler_indexes: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def views(cls, bulk: bool = False) -> dict[str, type[TrackingRecorder]]:
        """The view classes; `bulk=True`: of a scratch copy to fill from the events."""
        deferred = [s for s in cls.schema if bulk and secondary_index(s) not in (None, *cls.handler_indexes)]
        return view_classes(cls.name, cls.schema, cls.tables, cls.after_reset, deferred, bulk)

    position: int = 0

    def apply(self, tx: Tx, event: Any, position: int = 0) -> None:
        handler = self.handlers.get(type(event))
        if handler is not None:
            self.position = position
            handler(self, tx, event)

    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        """The library's one-event entry point (used by its own runners and by tests)."""
        view = self.view
        expected = view.position(tracking.application_name)
        view.process_batch(tracking.application_name, expected, [(domain_event, tracking.notification_id)],
                           self.apply, tracking.notification_id)

    def wants(self, notification: Notification) -> bool:
        return notification.topic in self.handled_topics

    def topics(self) -> frozenset[str] | None:
        """The topics `wants` takes (None: every event), for a rebuild's decoding workers."""
        return self.handled_topics


def handles(*event_classes: type) -> Callable[[Handler], Handler]:
    def mark(fn: Handler) -> Handler:
        fn._handles = event_classes  # type: ignore[attr-defined]
        return fn

    return mark

"""The SQLite datastore behind the event store and every read-model view.

The library's own (`eventsourcing.sqlite`) begins every transaction with a plain `BEGIN`: a
deferred transaction that reads, then writes, asks for the write lock only at its first
write, and when another process committed meanwhile SQLite refuses it at once with
`database is locked` (waiting cannot help: its snapshot is stale). Here every write
transaction begins `IMMEDIATE`, taking the write lock first and waiting for it (the busy
timeout, `SQLITE_LOCK_TIMEOUT` seconds) behind any other process, so a CLI command beside a
busy server waits its turn instead of failing. Read transactions stay deferred: in WAL mode
they never wait for a writer.

`SQLITE_BULK=y` opens a scratch file for bulk loading: no journal at all (so no rollback
either: a rebuild's copy is thrown away when anything fails), no syncs and a larger page
cache. `SQLITE_SYNCHRONOUS=NORMAL` (every live read model but the webhook deliveries) syncs
at WAL checkpoints instead of at every commit: a read model's rows and its tracking position
commit together, so a power cut can only take its last transactions back as a whole, and the
follower applies those events again from the store (which keeps FULL: an event is synced
before its append returns). Everything else works as the library's datastore does."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from eventsourcing.persistence import InterfaceError, OperationalError
from eventsourcing.sqlite import (
    SQLiteConnection,
    SQLiteConnectionPool,
    SQLiteCursor,
    SQLiteDatastore,
    SQLiteFactory,
    SQLiteTransaction,
)
from eventsourcing.utils import Environment, EnvType, strtobool

BUSY_TIMEOUT = 30  # seconds a write waits for another process's write lock
BULK_CACHE_KIB = 64 * 1024  # page cache of a bulk-loaded scratch file


class _Transaction(SQLiteTransaction):
    def __enter__(self) -> SQLiteCursor:
        cursor = self.connection.cursor()
        try:
            _begin(cursor, self.commit)
        except sqlite3.OperationalError as e:  # the busy timeout passed: say so as the library does
            cursor.sqlite_cursor.close()
            raise OperationalError(e) from e
        return cursor


def _begin(cursor: SQLiteCursor, write: bool) -> None:
    """Begin a transaction; a write one waits here for the file's write lock."""
    cursor.execute("BEGIN IMMEDIATE" if write else "BEGIN")


class _Connection(SQLiteConnection):
    @contextmanager
    def transaction(self, *, commit: bool) -> Iterator[SQLiteCursor]:
        with _Transaction(self, commit=commit) as curs, curs:
            yield curs


SYNCHRONOUS = frozenset({"NORMAL", "FULL"})


class _Pool(SQLiteConnectionPool):
    def __init__(self, *, bulk: bool, synchronous: str = "FULL", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.bulk = bulk
        self.synchronous = synchronous

    def _create_connection(self) -> SQLiteConnection:
        try:
            # The library asks for a statement cache of one (`cached_statements=True`); the
            # default (128) keeps a batch's alternating statements prepared.
            c = sqlite3.connect(database=self.db_name, uri=True, check_same_thread=False,
                                isolation_level=None, timeout=self.lock_timeout or BUSY_TIMEOUT)
        except (sqlite3.Error, TypeError) as e:
            raise InterfaceError(e) from e
        # Freed bytes are zeroed, so text a read model overwrites (an erasure) leaves no copy
        # in free space (projections/base.py scrubs the WAL afterwards).
        c.execute("PRAGMA secure_delete=ON")
        if self.bulk:
            for pragma in ("journal_mode=OFF", "synchronous=OFF", f"cache_size=-{BULK_CACHE_KIB}",
                           "temp_store=MEMORY"):
                c.execute(f"PRAGMA {pragma}")
        elif not self.is_sqlite_memory_mode and not self.is_journal_mode_wal:
            if c.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                c.execute("PRAGMA journal_mode=WAL")
                self.journal_mode_was_changed_to_wal = True
            self.is_journal_mode_wal = True
        if not self.bulk:
            c.execute(f"PRAGMA synchronous={self.synchronous}")
        c.row_factory = sqlite3.Row
        return _Connection(sqlite_conn=c, max_age=self.max_age)


class LedgerSQLiteDatastore(SQLiteDatastore):
    def __init__(self, db_name: str, *, lock_timeout: int | None = None, bulk: bool = False,
                 synchronous: str = "FULL", **kwargs: Any) -> None:
        super().__init__(db_name, lock_timeout=lock_timeout, **kwargs)
        timeout = lock_timeout or BUSY_TIMEOUT
        if synchronous not in SYNCHRONOUS:
            raise ValueError(f"SQLITE_SYNCHRONOUS must be one of {sorted(SYNCHRONOUS)}, got {synchronous!r}")
        # This process's own threads queue for the one writer connection as long as other
        # processes may make them wait for the file's lock (the library waits 5 s).
        self.pool = _Pool(db_name=db_name, lock_timeout=timeout, bulk=bulk, synchronous=synchronous,
                          pool_timeout=float(timeout))


class LedgerSQLiteFactory(SQLiteFactory):
    """`PERSISTENCE_MODULE` for SQLite: the library's factory with the datastore above."""

    SQLITE_BULK = "SQLITE_BULK"
    SQLITE_SYNCHRONOUS = "SQLITE_SYNCHRONOUS"

    def __init__(self, env: Environment | EnvType | None) -> None:
        super().__init__(env)
        library = self.datastore
        self.datastore = LedgerSQLiteDatastore(
            library.pool.db_name, lock_timeout=library.pool.lock_timeout,
            bulk=bool(strtobool(self.env.get(self.SQLITE_BULK, "n") or "n")),
            synchronous=(self.env.get(self.SQLITE_SYNCHRONOUS) or "FULL").upper(),
            single_row_tracking=library.single_row_tracking, originator_id_type=library.originator_id_type)
        library.close()

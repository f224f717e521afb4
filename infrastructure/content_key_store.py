"""Where the wrapped data keys live (infrastructure/content_keys.py holds the key ring):
a dict (in-memory stores), an SQLite file beside the events, or a PostgreSQL table.

Each backend keeps (key id, owner, wrapped key, created at) and one tombstone per erased
owner. Destroying deletes the owner's rows, leaves the tombstone and wipes what it freed:
SQLite with secure_delete, a rollback journal deleted at commit and a VACUUM; PostgreSQL
with a VACUUM of the table."""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from contextlib import closing
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger("ledgerllm")


class Backend(Protocol):
    def active(self, owner: str) -> tuple[str, bytes] | None: ...
    def get(self, key_id: str) -> tuple[str, bytes] | None: ...
    def add(self, key_id: str, owner: str, wrapped: bytes) -> None: ...
    def destroy(self, owner: str) -> int: ...
    def erased(self) -> set[str]: ...
    def rows(self) -> list[tuple[str, str, bytes]]: ...
    def put(self, rows: list[tuple[str, str, bytes]], erased: set[str]) -> None: ...


class MemoryBackend:
    def __init__(self) -> None:
        self.keys: dict[str, tuple[str, bytes]] = {}
        self.tombstones: set[str] = set()

    def active(self, owner: str) -> tuple[str, bytes] | None:
        mine = [(k, w) for k, (o, w) in self.keys.items() if o == owner]
        return mine[-1] if mine else None

    def get(self, key_id: str) -> tuple[str, bytes] | None:
        return self.keys.get(key_id)

    def add(self, key_id: str, owner: str, wrapped: bytes) -> None:
        self.keys[key_id] = (owner, wrapped)

    def destroy(self, owner: str) -> int:
        gone = [k for k, (o, _) in self.keys.items() if o == owner]
        for k in gone:
            del self.keys[k]
        self.tombstones.add(owner)
        return len(gone)

    def erased(self) -> set[str]:
        return set(self.tombstones)

    def rows(self) -> list[tuple[str, str, bytes]]:
        return [(k, o, w) for k, (o, w) in self.keys.items()]

    def put(self, rows: list[tuple[str, str, bytes]], erased: set[str]) -> None:
        for k, o, w in rows:
            self.keys.setdefault(k, (o, w))
        self.tombstones |= erased


_SCHEMA = [
    "CREATE TABLE IF NOT EXISTS {keys} (key_id TEXT PRIMARY KEY, owner TEXT NOT NULL, wrapped {blob} NOT NULL,"
    " created_at DOUBLE PRECISION NOT NULL)",
    "CREATE INDEX IF NOT EXISTS {keys}_owner ON {keys} (owner, created_at)",
    "CREATE TABLE IF NOT EXISTS {keys}_erased (owner TEXT PRIMARY KEY, erased_at DOUBLE PRECISION NOT NULL)",
]


class _SqlBackend:
    """The queries both SQL backends run; `mark` is the driver's parameter placeholder."""

    table: str
    mark = "?"

    def _connect(self) -> Any:
        raise NotImplementedError

    def _run(self, c: Any, sql: str, params: tuple[object, ...] = ()) -> Any:
        return c.execute(sql.format(t=self.table).replace("?", self.mark), params)

    def active(self, owner: str) -> tuple[str, bytes] | None:
        with self._connect() as c:
            row = self._run(c, "SELECT key_id, wrapped FROM {t} WHERE owner = ? ORDER BY created_at DESC LIMIT 1",
                            (owner,)).fetchone()
        return (row[0], bytes(row[1])) if row else None

    def get(self, key_id: str) -> tuple[str, bytes] | None:
        with self._connect() as c:
            row = self._run(c, "SELECT owner, wrapped FROM {t} WHERE key_id = ?", (key_id,)).fetchone()
        return (row[0], bytes(row[1])) if row else None

    def add(self, key_id: str, owner: str, wrapped: bytes) -> None:
        with self._connect() as c:
            self._run(c, "INSERT INTO {t} VALUES (?, ?, ?, ?)", (key_id, owner, wrapped, time.time()))

    def _delete(self, owner: str) -> int:
        """Delete the owner's keys and leave its tombstone, in one transaction."""
        with self._connect() as c:
            n = self._run(c, "DELETE FROM {t} WHERE owner = ?", (owner,)).rowcount
            self._run(c, "INSERT INTO {t}_erased VALUES (?, ?) ON CONFLICT (owner) DO NOTHING", (owner, time.time()))
        return int(n)

    def erased(self) -> set[str]:
        with self._connect() as c:
            return {r[0] for r in self._run(c, "SELECT owner FROM {t}_erased")}

    def rows(self) -> list[tuple[str, str, bytes]]:
        with self._connect() as c:
            return [(k, o, bytes(w)) for k, o, w in self._run(c, "SELECT key_id, owner, wrapped FROM {t}")]

    def put(self, rows: list[tuple[str, str, bytes]], erased: set[str]) -> None:
        now = time.time()
        insert = "INSERT INTO {t} VALUES (?, ?, ?, ?) ON CONFLICT (key_id) DO NOTHING"
        tombstone = "INSERT INTO {t}_erased VALUES (?, ?) ON CONFLICT (owner) DO NOTHING"
        with self._connect() as c:
            for sql, params in ((insert, [(k, o, w, now) for k, o, w in rows]), (tombstone, [(o, now) for o in erased])):
                c.cursor().executemany(sql.format(t=self.table).replace("?", self.mark), params)


class SqliteBackend(_SqlBackend):
    """One short connection per call: keys are cached, so calls are rare. Rollback journal
    (deleted at commit) and secure_delete, so a destroyed key leaves no bytes behind."""

    table = "content_keys"

    def __init__(self, path: Path) -> None:
        self.path = path
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        with self._connect() as c:
            for statement in _SCHEMA:
                c.execute(statement.format(keys=self.table, blob="BLOB"))

    def _connect(self) -> Any:
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        conn.execute("PRAGMA secure_delete=ON")
        conn.execute("PRAGMA journal_mode=DELETE")

        class _Tx:
            def __enter__(self) -> sqlite3.Connection:
                conn.execute("BEGIN IMMEDIATE")
                return conn

            def __exit__(self, exc_type: Any, *_: Any) -> None:
                conn.execute("ROLLBACK" if exc_type else "COMMIT")
                conn.close()

        return _Tx()

    def destroy(self, owner: str) -> int:
        n = self._delete(owner)
        with closing(sqlite3.connect(self.path, timeout=30, isolation_level=None)) as c:
            c.execute("VACUUM")  # small table; leaves no free page behind
        return n


class PostgresBackend(_SqlBackend):
    mark = "%s"
    table = "ledger_content_keys"

    def __init__(self, url: str) -> None:
        self.url = url
        with self._connect() as c:
            for statement in _SCHEMA:
                try:
                    c.execute(statement.format(keys=self.table, blob="BYTEA"))
                except Exception:  # a concurrent CREATE ... IF NOT EXISTS by another process
                    c.rollback()
                else:
                    c.commit()

    def _connect(self) -> Any:
        import psycopg

        return psycopg.connect(self.url, connect_timeout=10)

    def destroy(self, owner: str) -> int:
        import psycopg

        n = self._delete(owner)
        try:  # dead row versions keep the wrapped key until vacuumed
            with psycopg.connect(self.url, connect_timeout=10, autocommit=True) as c:
                c.execute(f"VACUUM {self.table}")
        except psycopg.Error as e:
            log.warning("could not VACUUM %s after an erasure (%s); autovacuum will remove the old rows",
                        self.table, type(e).__name__)
        return n

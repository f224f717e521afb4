"""The cursor projections write through: `?` placeholders on SQLite and PostgreSQL alike,
rows as dicts, and, while a batch of events is applied, inserts queued into multi-row writes."""

from __future__ import annotations

import re
import weakref
from collections.abc import Sequence
from functools import lru_cache
from typing import Any, NamedTuple

import psycopg


class Tx:
    """A cursor that takes `?` placeholders on both backends and returns rows as dicts.

    `batched=True` (a batch of events being applied): each plain `INSERT ... VALUES (?, ...)`
    waits in a queue per table, and a queue goes out as one multi-row write (SQLite:
    `executemany`; PostgreSQL: `COPY`, or `executemany` when the insert has an `ON CONFLICT`
    clause or literal values) before any other statement or read that names its table, and
    at `flush()`. So every statement still sees the rows written before it, in order.

    `later`: where `execute_later` leaves its statements while a scratch copy is filled."""

    def __init__(self, cursor: Any, postgres: bool, batched: bool = False,
                 later: list[tuple[str, tuple[Any, ...]]] | None = None) -> None:
        self.cursor = cursor
        self.postgres = postgres
        self.batched = batched
        self.later = later
        self._queued: dict[str, tuple[str, _Insert, list[tuple[Any, ...]]]] = {}  # table -> (sql, plan, rows)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Tx:
        if self.batched:
            plan = _insert_plan(sql)
            if plan is not None:
                queued = self._queued.get(plan.table)
                if queued is not None and queued[0] == sql:
                    queued[2].append(tuple(params))
                    return self
                if queued is not None:
                    self._flush_table(plan.table)
                self._queued[plan.table] = (sql, plan, [tuple(params)])
                return self
            self._flush_named(sql)
        if self.postgres:
            sql = sql.replace("?", "%s")
        self.cursor.execute(sql, tuple(params))
        return self

    def execute_later(self, sql: str, params: Sequence[Any] = ()) -> Tx:
        """`execute`, or, while a scratch copy is being filled, once it is full and indexed
        (`SqlView.finish`): an UPDATE or DELETE per reset or deletion then finds its rows
        through an index instead of keeping that index up to date on every insert.

        Only for statements whose effect does not depend on when they run: they touch only
        rows of earlier events (`position < ?` of this one, say), and rows and columns that
        other handlers neither read nor change but through statements left for later too
        (those run in the order the events came)."""
        if self.later is None:
            return self.execute(sql, params)
        self.later.append((sql, tuple(params)))
        return self

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self._flush_named(sql)
        if self.postgres:
            sql = sql.replace("?", "%s")
        self.cursor.executemany(sql, [tuple(r) for r in rows])

    def flush(self) -> None:
        """Write every queued insert."""
        for table in list(self._queued):
            self._flush_table(table)

    def _flush_named(self, sql: str) -> None:
        for table in [t for t in self._queued if _names(sql, t)]:
            self._flush_table(table)

    def _flush_table(self, table: str) -> None:
        sql, plan, rows = self._queued.pop(table)
        if self.postgres and plan.copy is not None and len(rows) >= COPY_MIN_ROWS and self._copy(plan, rows):
            return
        if len(rows) == 1:
            self.cursor.execute(sql.replace("?", "%s") if self.postgres else sql, rows[0])
        else:
            self.cursor.executemany(sql.replace("?", "%s") if self.postgres else sql, rows)

    def _copy(self, plan: _Insert, rows: list[tuple[Any, ...]]) -> bool:
        """Send `rows` with one binary COPY, in a savepoint: a value binary COPY cannot send
        as its column's type (an INSERT would let PostgreSQL convert it) rolls it back, and
        the caller inserts the rows instead. False then."""
        connection = self.cursor.connection
        types = _column_types(self.cursor, plan)
        try:
            with connection.transaction(), self.cursor.copy(plan.copy + " (FORMAT BINARY)") as copy:
                copy.set_types(types)
                for row in rows:
                    copy.write_row(row)
        except (psycopg.DataError, psycopg.ProgrammingError, TypeError, ValueError):
            return False
        return True

    def _query(self, sql: str, params: Sequence[Any]) -> Any:
        """The cursor, holding this query's rows."""
        if self.batched:
            self._flush_named(sql)
        self.cursor.execute(sql.replace("?", "%s") if self.postgres else sql, tuple(params))
        return self.cursor

    def one(self, sql: str, params: Sequence[Any] = ()) -> dict[str, Any] | None:
        row = self._query(sql, params).fetchone()
        return None if row is None else dict(row)

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        return [dict(r) for r in self._query(sql, params).fetchall()]

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        row = self.one(sql, params)
        return None if row is None else next(iter(row.values()))

    @property
    def rowcount(self) -> int:
        """Rows the last (unbatched) statement changed."""
        return getattr(self.cursor, "sqlite_cursor", self.cursor).rowcount


COPY_MIN_ROWS = 8  # fewer queued rows go out as an executemany: a COPY costs a round trip more

_INSERT = re.compile(r"\s*INSERT\s+INTO\s+(\w+)\s*(?:\(([^()]*)\))?\s*VALUES\s*\(([^()]*)\)\s*(.*)",
                     re.IGNORECASE | re.DOTALL)


class _Insert(NamedTuple):
    table: str
    columns: tuple[str, ...]  # as the statement names them; () for all, in table order
    copy: str | None  # the COPY statement that writes the same rows, if there is one


@lru_cache(maxsize=512)
def _insert_plan(sql: str) -> _Insert | None:
    """How to queue `sql`: plain `INSERT INTO t [(cols)] VALUES (...) [ON CONFLICT ...]`
    statements can wait (they read nothing); anything else (a SELECT inside, RETURNING) not."""
    match = _INSERT.fullmatch(sql)
    if match is None or re.search(r"\bRETURNING\b", match[4], re.IGNORECASE):
        return None
    table, columns, values, rest = match.groups()
    names = tuple(c.strip().strip('"') for c in columns.split(",")) if columns else ()
    placeholders = all(v.strip() == "?" for v in values.split(","))
    copy = None
    if placeholders and not rest.strip():
        copy = f"COPY {table} ({columns}) FROM STDIN" if columns else f"COPY {table} FROM STDIN"
    return _Insert(table, names, copy)


def _column_types(cursor: Any, plan: _Insert) -> list[int]:
    """The type OIDs of the columns `plan.copy` writes, in order (looked up once per
    connection: a connection's search path, so its tables, never change)."""
    known = _TYPES.setdefault(cursor.connection, {})
    if plan.copy not in known:
        cursor.execute("SELECT attname, atttypid::int AS oid FROM pg_attribute WHERE attrelid = %s::regclass"
                       " AND attnum > 0 AND NOT attisdropped ORDER BY attnum", (plan.table,))
        oids = {r["attname"]: r["oid"] for r in cursor.fetchall()}
        known[plan.copy] = [oids[c] for c in plan.columns] if plan.columns else list(oids.values())
    return known[plan.copy]


_TYPES: weakref.WeakKeyDictionary[Any, dict[str | None, list[int]]] = weakref.WeakKeyDictionary()


@lru_cache(maxsize=4096)
def _names(sql: str, table: str) -> bool:
    """Whether `sql` names the table `table` (or a column or alias of that name: a write the
    more, never one missed)."""
    return re.search(rf"\b{re.escape(table)}\b", sql) is not None

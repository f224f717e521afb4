"""One bounded PostgreSQL connection pool per process, shared by the event store and every
read model's view (and their scratch copies made by a rebuild or `ledgerllm verify`).

The library builds a `PostgresDatastore`, with a pool of its own, for every infrastructure
factory: one for the store and one per view, ~15 connections idle per server. Here each
factory gets a `PooledDatastore` instead: the library's datastore with its SQL and error
mapping, on the process's one `psycopg_pool` pool, released (not closed) when the view or
the store closes; the pool closes when the last of them has.

Sizes (`PoolSize`): a server keeps `PG_POOL_SIZE` (2) connections open and opens more, up to
`PG_POOL_MAX` (10), under load; connections above the minimum that sit idle for
`IDLE_SECONDS` are closed again. CLI commands keep 1 and open up to 3. Every connection
carries `application_name` = `ledgerllm-<role>-<pid>`, so operators (and the tests) can
count a process's connections in `pg_stat_activity`.

PgBouncer in transaction mode: nothing here needs a session. Connections are autocommit and
every transaction is one `with` block; a scratch copy's `search_path` is `SET LOCAL` inside
each of its transactions; advisory locks are transaction-scoped; nothing LISTENs. Server-side
prepared statements work with PgBouncer 1.21+ (`max_prepared_statements` > 0); with an older
one set `PG_PREPARED_STATEMENTS=off`."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple

from eventsourcing.persistence import BaseInfrastructureFactory, InterfaceError
from eventsourcing.postgres import ConnectionPool, PostgresDatastore, PostgresFactory
from eventsourcing.utils import get_topic
from psycopg import Connection, Cursor
from psycopg.rows import DictRow, dict_row
from psycopg.sql import SQL, Composed, Identifier

IDLE_SECONDS = 60.0  # a connection above the pool's minimum idle this long is closed
WAIT_SECONDS = 10.0  # a request waits this long for a free connection, then fails (503)
IDLE_IN_TRANSACTION_SECONDS = 5  # the library's default: a transaction left open is ended by PostgreSQL

# The environment keys our factory reads beside the library's POSTGRES_* ones.
ROLE, POOL_MIN, POOL_MAX, PREPARE, SCHEMA, BULK = (
    "LEDGERLLM_PG_ROLE", "LEDGERLLM_PG_POOL_MIN", "LEDGERLLM_PG_POOL_MAX", "LEDGERLLM_PG_PREPARE",
    "LEDGERLLM_PG_SCHEMA", "LEDGERLLM_PG_BULK")


class PoolSize(NamedTuple):
    min: int
    max: int


CLI_POOL = PoolSize(1, 3)


def application_name(role: str) -> str:
    """What this process's connections show in `pg_stat_activity.application_name`."""
    return f"ledgerllm-{role}-{os.getpid()}"


class SharedPool:
    """The process's pool for one database and role; counted references, closed with the last."""

    def __init__(self, key: tuple[Any, ...], conninfo: dict[str, Any], size: PoolSize, role: str,
                 prepare: bool) -> None:
        self.key = key
        self.refs = 0
        self.pool: ConnectionPool[Connection[DictRow]] = ConnectionPool(
            connection_class=Connection[DictRow],
            kwargs={**conninfo, "row_factory": dict_row, "application_name": application_name(role),
                    "prepare_threshold": 5 if prepare else None},
            min_size=size.min, max_size=max(size.min, size.max), open=False, configure=_configure,
            check=ConnectionPool.check_connection,  # a connection a PostgreSQL restart broke is replaced
            timeout=WAIT_SECONDS, max_idle=IDLE_SECONDS, name=application_name(role),
        )

    def release(self) -> None:
        with _LOCK:
            self.refs -= 1
            if self.refs > 0:
                return
            _POOLS.pop(self.key, None)
        self.pool.close()


_LOCK = threading.Lock()
_POOLS: dict[tuple[Any, ...], SharedPool] = {}


def _configure(conn: Connection[Any]) -> None:
    conn.autocommit = True
    conn.execute(SQL("SET idle_in_transaction_session_timeout = '{}s'").format(IDLE_IN_TRANSACTION_SECONDS))


def acquire(conninfo: dict[str, Any], role: str, size: PoolSize, prepare: bool = True) -> SharedPool:
    """This process's pool for `conninfo` and `role` (made on first use), with one more reference."""
    key = (os.getpid(), role, *(conninfo.get(k) for k in ("host", "port", "dbname", "user")))
    with _LOCK:
        shared = _POOLS.get(key)
        if shared is None:
            shared = _POOLS[key] = SharedPool(key, conninfo, size, role, prepare)
        shared.refs += 1
    shared.pool.open(wait=False)
    return shared


def open_pools(dbname: str) -> dict[str, PoolSize]:
    """This process's open pools on the database `dbname`: application name -> size."""
    with _LOCK:
        return {p.pool.name: PoolSize(p.pool.min_size, p.pool.max_size) for p in _POOLS.values() if p.key[4] == dbname}


class PooledDatastore(PostgresDatastore):
    """The library's datastore on a shared pool: `close` gives its reference back once.
    `schema`: a scratch copy's tables, which its unqualified SQL reaches through a `SET LOCAL
    search_path` in each transaction (`bulk`: and without waiting for the WAL flush)."""

    def __init__(self, shared: SharedPool, *, schema: str = "", bulk: bool = False) -> None:
        # What PostgresDatastore.__init__ sets, without the pool it would make.
        self.idle_in_transaction_session_timeout = IDLE_IN_TRANSACTION_SECONDS
        self.pre_ping, self.pool_open_timeout, self.single_row_tracking = True, None, True
        self.lock_timeout, self.originator_id_type, self.enable_db_functions = 0, "uuid", False
        self.schema = schema.strip() or "public"
        self.db_type_names: set[str] = set()
        self.psycopg_type_adapters: dict[str, Any] = {}
        self.psycopg_python_types: dict[str, Any] = {}
        self.shared, self.pool = shared, shared.pool
        self._released = False
        self._local: list[Composed] = []
        if schema.strip():
            self._local.append(SQL("SET LOCAL search_path TO {}").format(Identifier(self.schema)))
        if bulk:
            self._local.append(SQL("SET LOCAL synchronous_commit TO off"))

    def after_connect_func(self) -> Callable[[Connection[Any]], None]:
        return _configure

    @contextmanager
    def get_connection(self) -> Iterator[Connection[DictRow]]:
        if self._released:
            raise InterfaceError("this view's connection pool was closed")
        with super().get_connection() as conn:
            yield conn

    @contextmanager
    def transaction(self, *, commit: bool = False) -> Iterator[Cursor[DictRow]]:
        with self.get_connection() as conn, conn.transaction(force_rollback=not commit):
            cursor = conn.cursor()
            for statement in self._local:
                cursor.execute(statement)
            yield cursor

    def close(self) -> None:
        if not getattr(self, "_released", True):
            self._released = True
            self.shared.release()

    def __enter__(self) -> PooledDatastore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class PooledPostgresFactory(PostgresFactory):
    """The library's PostgreSQL factory, whose recorders share the process's pool."""

    def __init__(self, env: Any) -> None:  # the library's own __init__ would make a pool
        BaseInfrastructureFactory.__init__(self, env)
        get = self.env.get
        size = PoolSize(int(get(POOL_MIN) or CLI_POOL.min), int(get(POOL_MAX) or CLI_POOL.max))
        shared = acquire(conninfo(get), get(ROLE) or "cli", size, (get(PREPARE) or "y") == "y")
        self.datastore = PooledDatastore(shared, schema=get(SCHEMA) or "", bulk=get(BULK) == "y")


FACTORY_TOPIC = get_topic(PooledPostgresFactory)


def conninfo(get: Callable[[str], str | None]) -> dict[str, Any]:
    """psycopg's connection arguments from the library's POSTGRES_* entries."""
    return {"dbname": get("POSTGRES_DBNAME"), "host": get("POSTGRES_HOST"), "port": get("POSTGRES_PORT") or "5432",
            "user": get("POSTGRES_USER"), "password": get("POSTGRES_PASSWORD") or "",
            "connect_timeout": int(get("POSTGRES_CONNECT_TIMEOUT") or 10)}


@contextmanager
def pooled_connection(env: dict[str, str]) -> Iterator[Connection[DictRow]]:
    """A connection (autocommit) from the pool that `env` (a `pool_env` plus POSTGRES_*) names,
    for the odd statement outside a view (CREATE SCHEMA, DROP TABLE of a scratch copy)."""
    shared = acquire(conninfo(env.get), env.get(ROLE) or "cli",
                     PoolSize(int(env.get(POOL_MIN) or 1), int(env.get(POOL_MAX) or 3)), env.get(PREPARE) != "n")
    try:
        with shared.pool.connection() as conn:
            yield conn
    finally:
        shared.release()


def pool_env(role: str, size: PoolSize, prepare: bool) -> dict[str, str]:
    """The environment entries that put a factory on the process's pool."""
    return {"PERSISTENCE_MODULE": FACTORY_TOPIC, ROLE: role, POOL_MIN: str(size.min), POOL_MAX: str(size.max),
            PREPARE: "y" if prepare else "n"}

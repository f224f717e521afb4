"""The eventsourcing environment: which store holds the events and each projection's view.

Embedded (default): `DATA_DIR/events.db`, and one SQLite file per projection, since the
library's SQLite tracking table has a fixed name; every write transaction there begins
IMMEDIATE and waits for another process's lock (infrastructure/sqlite_store.py).
PostgreSQL (`DATABASE_URL`): one database, events in `ledger_events` (and their digest
chain in `ledger_chain`, see infrastructure/chain.py), each projection's tables and
`<name>_tracking` beside them."""

from __future__ import annotations

import os
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import psycopg
from eventsourcing.persistence import ApplicationRecorder, InfrastructureFactory, TrackingRecorder
from eventsourcing.utils import Environment, get_topic
from psycopg.sql import SQL, Identifier

from infrastructure.chain import ChainedPostgresRecorder, ChainedSQLiteRecorder
from infrastructure.content_keys import (
    ENV_MASTER, ENV_STORE, KEYS_FILE, MASTER_FILE, MasterKeyError, ShreddingCipher, key_ring, master_key_hex,
    postgres_master_key_hex,
)
from infrastructure.files import atomic_write
from infrastructure.mapper import MsgspecMapper
from infrastructure.pg_pool import BULK, CLI_POOL, SCHEMA, PoolSize, pool_env, pooled_connection
from infrastructure.settings import Settings, postgres_env
from infrastructure.sqlite_store import BUSY_TIMEOUT, LedgerSQLiteFactory

SQLITE_MODULE = get_topic(LedgerSQLiteFactory)


def _data_dir(settings: Settings) -> Path:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return settings.data_dir


def ledger_env(settings: Settings) -> dict[str, str]:
    env = {
        "MAPPER_TOPIC": get_topic(MsgspecMapper),
        **content_keys_env(settings),
        # Replays of the directory and sequence aggregates are fast-forwarded from a cache.
        "AGGREGATE_CACHE_MAXSIZE": "1000",
    }
    if settings.in_memory:
        env["PERSISTENCE_MODULE"] = "eventsourcing.popo"
    elif settings.database_url:
        env.update(postgres_env(settings.database_url), **_pool_env(settings),
                   APPLICATION_RECORDER_TOPIC=get_topic(ChainedPostgresRecorder))
    else:
        env.update(
            PERSISTENCE_MODULE=SQLITE_MODULE,
            SQLITE_DBNAME=str(_data_dir(settings) / "events.db"),
            SQLITE_LOCK_TIMEOUT=str(BUSY_TIMEOUT),
            APPLICATION_RECORDER_TOPIC=get_topic(ChainedSQLiteRecorder),
        )
    return env


def content_keys_env(settings: Settings) -> dict[str, str]:
    """Where the mapper's per-user data keys live, and the master key that wraps them."""
    if settings.in_memory:
        return {"CIPHER_TOPIC": get_topic(ShreddingCipher), ENV_STORE: f"memory:{uuid4().hex}",
                ENV_MASTER: os.urandom(32).hex()}
    master = _master_key(settings)
    if settings.database_url:
        store = f"postgres:{settings.database_url}"
    else:
        store = f"sqlite:{_data_dir(settings) / KEYS_FILE}"
    return {"CIPHER_TOPIC": get_topic(ShreddingCipher), ENV_STORE: store, ENV_MASTER: master}


def _master_key(settings: Settings) -> str:
    configured = settings.content_master_key or settings.content_master_key_file
    if settings.database_url and not configured:
        return postgres_master_key_hex(settings.database_url)
    return master_key_hex(settings.content_master_key, settings.content_master_key_file, _data_dir(settings))


def copy_content_keys(source: Settings, target: Settings) -> int:
    """Give `target` (a replay's DATA_DIR) the master key and every data key of `source`, so
    its copied events open as they do in the source (and erased ones stay erased)."""
    master = _master_key(source)
    if not target.content_master_key and target.content_master_key_file is None:
        atomic_write(_data_dir(target) / MASTER_FILE, master.encode() + b"\n")  # 0600
    source_env, target_env = content_keys_env(source), content_keys_env(target)
    if target_env[ENV_MASTER] != master:
        raise MasterKeyError("the replay's master key differs from the store's")
    return key_ring(source_env[ENV_STORE], master).copy_to(key_ring(target_env[ENV_STORE], master))


def projection_env(settings: Settings, name: str) -> dict[str, str]:
    if settings.in_memory:
        return {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": ":memory:"}
    if settings.database_url:
        return {**postgres_env(settings.database_url), **_pool_env(settings)}
    return {
        "PERSISTENCE_MODULE": SQLITE_MODULE,
        "SQLITE_DBNAME": str(_data_dir(settings) / f"{name}.db"),
        "SQLITE_LOCK_TIMEOUT": str(BUSY_TIMEOUT),
    }


def open_view(settings: Settings, name: str, view_classes: dict[str, type[TrackingRecorder]],
              *, directory: Path | None = None, schema: str | None = None,
              bulk: bool = False, durable: bool = False) -> TrackingRecorder:
    """Construct the projection `name`'s view for the configured backend, creating its tables.
    On PostgreSQL every view (and the store) draws on the process's one pool (infrastructure/pg_pool.py).

    A view beside the live one (a rebuild, a verify): with SQLite, `directory` holds its file;
    with PostgreSQL, `schema` holds its tables (created if missing). `bulk`: a scratch copy,
    thrown away if anything fails, so written without durability (SQLite: no WAL, no syncs;
    PostgreSQL: `synchronous_commit=off`, and its view classes make unlogged tables).
    A SQLite view syncs at checkpoints rather than at each commit (it can be rebuilt from the
    store, and rows and position commit together), unless `durable`: a view whose rows no
    event holds (the webhook deliveries)."""
    backend = "postgres" if settings.database_url else "sqlite"
    env_vars = projection_env(settings, name)
    if backend == "postgres" and schema:
        with admin_connection(settings) as conn:
            conn.execute(SQL("CREATE SCHEMA IF NOT EXISTS {}").format(Identifier(schema)))
        env_vars.update({SCHEMA: schema, BULK: "y" if bulk else "n"})
    if backend == "sqlite" and directory is not None:
        directory.mkdir(parents=True, exist_ok=True)
        env_vars["SQLITE_DBNAME"] = str(directory / f"{name}.db")
    if backend == "sqlite" and bulk:
        env_vars[LedgerSQLiteFactory.SQLITE_BULK] = "y"
    elif backend == "sqlite":
        env_vars[LedgerSQLiteFactory.SQLITE_SYNCHRONOUS] = "FULL" if durable else "NORMAL"
    factory = InfrastructureFactory.construct(Environment(name, env_vars))
    return factory.tracking_recorder(view_classes[backend])


def pool_size(settings: Settings) -> PoolSize:
    """PostgreSQL connections this process keeps open (min) and opens at most (max)."""
    return PoolSize(settings.pg_pool_size, settings.pg_pool_max) if settings.pg_role == "serve" else CLI_POOL


def _pool_env(settings: Settings) -> dict[str, str]:
    return pool_env(settings.pg_role, pool_size(settings), settings.pg_prepared_statements)


def admin_connection(settings: Settings) -> AbstractContextManager[psycopg.Connection[Any]]:
    """A connection (autocommit) from the process's pool, for statements outside any view."""
    return pooled_connection({**postgres_env(settings.database_url or ""), **_pool_env(settings)})


def drop_schema(settings: Settings, schema: str) -> None:
    with admin_connection(settings) as conn:
        conn.execute(SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(Identifier(schema)))


def aggregate_positions(recorder: ApplicationRecorder, originator_id: UUID) -> dict[int, int]:
    """Version → position (notification id) of one aggregate's stored events: the library's
    `events.get` yields the events without their place in the global order."""
    from eventsourcing.postgres import PostgresApplicationRecorder
    from psycopg.sql import SQL, Identifier

    table = recorder.events_table_name  # type: ignore[attr-defined]
    datastore = recorder.datastore  # type: ignore[attr-defined]
    with datastore.transaction(commit=False) as cursor:
        if isinstance(recorder, PostgresApplicationRecorder):
            cursor.execute(SQL("SELECT originator_version, notification_id FROM {}.{} WHERE originator_id = %s")
                           .format(Identifier(datastore.schema), Identifier(table)), (originator_id,))
            return {r["originator_version"]: r["notification_id"] for r in cursor.fetchall()}
        cursor.execute(f"SELECT originator_version, rowid FROM {table} WHERE originator_id = ?", (originator_id.hex,))
        return {r[0]: r[1] for r in cursor.fetchall()}

"""The eventsourcing environment: which store holds the events and each projection's view.

Embedded (default): `DATA_DIR/events.db`, and one SQLite file per projection, since the
library's SQLite tracking table has a fixed name. PostgreSQL (`DATABASE_URL`): one database,
events in `ledger_events` (and their digest chain in `ledger_chain`,
see infrastructure/chain.py), each projection's tables and `<name>_tracking` beside them."""

from __future__ import annotations

from pathlib import Path
from uuid import UUID

from eventsourcing.persistence import ApplicationRecorder, InfrastructureFactory, TrackingRecorder
from eventsourcing.utils import Environment, get_topic

from infrastructure.chain import ChainedPostgresRecorder, ChainedSQLiteRecorder
from infrastructure.mapper import MsgspecMapper
from infrastructure.settings import Settings, postgres_env


def _data_dir(settings: Settings) -> Path:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return settings.data_dir


def ledger_env(settings: Settings) -> dict[str, str]:
    env = {
        "MAPPER_TOPIC": get_topic(MsgspecMapper),
        # Replays of the directory and sequence aggregates are fast-forwarded from a cache.
        "AGGREGATE_CACHE_MAXSIZE": "1000",
    }
    if settings.database_url:
        env.update(postgres_env(settings.database_url), PERSISTENCE_MODULE="eventsourcing.postgres",
                   APPLICATION_RECORDER_TOPIC=get_topic(ChainedPostgresRecorder))
        # Connections kept open per process; more (up to the overflow) are opened under load.
        env["POSTGRES_POOL_SIZE"] = "2"
        env["POSTGRES_MAX_OVERFLOW"] = "10"
    else:
        env.update(
            PERSISTENCE_MODULE="eventsourcing.sqlite",
            SQLITE_DBNAME=str(_data_dir(settings) / "events.db"),
            SQLITE_LOCK_TIMEOUT="10",
            APPLICATION_RECORDER_TOPIC=get_topic(ChainedSQLiteRecorder),
        )
    return env


def projection_env(settings: Settings, name: str, pool_size: int = 1) -> dict[str, str]:
    """`pool_size`: PostgreSQL connections the view keeps open (more are opened under load)."""
    if settings.database_url:
        env = postgres_env(settings.database_url)
        env.update(PERSISTENCE_MODULE="eventsourcing.postgres", POSTGRES_POOL_SIZE=str(pool_size),
                   POSTGRES_MAX_OVERFLOW="6")
        return env
    return {
        "PERSISTENCE_MODULE": "eventsourcing.sqlite",
        "SQLITE_DBNAME": str(_data_dir(settings) / f"{name}.db"),
        "SQLITE_LOCK_TIMEOUT": "10",
    }


def open_view(settings: Settings, name: str, view_classes: dict[str, type[TrackingRecorder]],
              pool_size: int = 1) -> TrackingRecorder:
    """Construct the projection `name`'s view for the configured backend, creating its tables."""
    env = Environment(name, projection_env(settings, name, pool_size))
    factory = InfrastructureFactory.construct(env)
    backend = "postgres" if settings.database_url else "sqlite"
    return factory.tracking_recorder(view_classes[backend])


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

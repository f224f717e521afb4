"""PostgreSQL for `ledgerllm backup`, `restore` and `events import`: positions, pg_dump, pg_restore.

pg_dump and pg_restore are the PostgreSQL client tools on PATH. The connection reaches them
as libpq variables: the password travels in PGPASSWORD, never on a command line.

Only the standard library is imported at module level (psycopg when a function runs), so
`ledgerllm --help` stays fast."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path, PurePosixPath
from typing import Any

from api.progress import fail, mib, say
from infrastructure.pg_pool import application_name

APP = "Ledger"  # application.ledger.Ledger.name: the tracking rows' application name
EVENTS_TABLE = "ledger_events"  # its PostgreSQL events table


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise fail(f"{name} is not on PATH; install the PostgreSQL client tools (Debian/Ubuntu: "
                   f"`apt-get install postgresql-client`, a version at least the server's), then run again.")
    return path


def pg_env(database_url: str) -> dict[str, str]:
    """The connection as libpq variables: the password goes in PGPASSWORD, never in argv."""
    from infrastructure.settings import postgres_env

    parts = postgres_env(database_url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(PGHOST=parts["POSTGRES_HOST"], PGPORT=parts["POSTGRES_PORT"], PGUSER=parts["POSTGRES_USER"],
               PGDATABASE=parts["POSTGRES_DBNAME"], PGCONNECT_TIMEOUT="10")
    if parts["POSTGRES_PASSWORD"]:
        env["PGPASSWORD"] = parts["POSTGRES_PASSWORD"]
    return env


def _run_tool(argv: list[str], env: dict[str, str], grows: Path | None = None) -> None:
    """Run pg_dump/pg_restore; show the size of `grows` while it runs; its stderr on failure."""
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
        shown = time.monotonic()
        while proc.poll() is None:
            time.sleep(0.2)
            if grows is not None and grows.exists() and time.monotonic() - shown >= (1 if sys.stderr.isatty() else 10):
                shown = time.monotonic()
                say(f"{Path(argv[0]).name}: {mib(grows.stat().st_size)} written")
        err.seek(0)
        message = err.read().decode(errors="replace").strip()
    if proc.returncode != 0:
        raise fail(f"{Path(argv[0]).name} failed (exit {proc.returncode}):\n{message}")


def pg_positions(conn: Any) -> tuple[int, dict[str, int]]:
    """The events' head and each read model's tracking position, read on `conn`."""
    from psycopg import sql

    exists = conn.execute("SELECT to_regclass(%s)", (EVENTS_TABLE,)).fetchone()[0]
    head = conn.execute(sql.SQL("SELECT MAX(notification_id) FROM {}").format(
        sql.Identifier(EVENTS_TABLE))).fetchone()[0] if exists else None
    positions = {}
    tables = conn.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
                          " AND table_name LIKE %s ORDER BY table_name", ("%\\_tracking",)).fetchall()
    for (table,) in tables:
        row = conn.execute(sql.SQL("SELECT MAX(notification_id) FROM {} WHERE application_name = %s").format(
            sql.Identifier(table)), (APP,)).fetchone()
        positions[table.removesuffix("_tracking")] = row[0] or 0
    return head or 0, positions


def pg_read_model_positions(database_url: str) -> dict[str, int]:
    import psycopg

    with psycopg.connect(database_url, connect_timeout=10, application_name=application_name("cli")) as conn:
        return pg_positions(conn)[1]


def pg_has_events(database_url: str) -> bool:
    import psycopg

    with psycopg.connect(database_url, connect_timeout=10, application_name=application_name("cli")) as conn:
        return bool(pg_positions(conn)[0])


def pg_dump(database_url: str, path: Path, snapshot: str | None = None) -> None:
    argv = [tool("pg_dump"), "--format=custom", f"--file={path}", "--no-password"]
    if snapshot:
        argv.append(f"--snapshot={snapshot}")
    _run_tool(argv, pg_env(database_url), grows=path)
    os.chmod(path, 0o600)


def pg_dump_snapshot(database_url: str, path: Path) -> dict[str, Any]:
    """pg_dump in a snapshot exported by our own REPEATABLE READ transaction: the positions
    returned are exactly those of the dump."""
    import psycopg

    with psycopg.connect(database_url, connect_timeout=10, application_name=application_name("cli")) as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        snapshot = conn.execute("SELECT pg_export_snapshot()").fetchone()[0]
        head, positions = pg_positions(conn)
        if not head:
            raise fail(f"the database has no events ({EVENTS_TABLE} is empty or missing): nothing to back up.")
        say(f"running pg_dump (events head {head})...")
        pg_dump(database_url, path, snapshot)
        conn.rollback()
    database = PurePosixPath(database_url.split("?")[0]).name
    return {"backend": "postgres", "database": database, "events_head": head, "read_models": positions}


def pg_restore(database_url: str, path: Path) -> None:
    """Replace the database's tables with the dump's, in one transaction."""
    say("running pg_restore...")
    env = pg_env(database_url)
    dbname = env["PGDATABASE"].replace("\\", "\\\\").replace("'", "\\'")  # a conninfo value, quoted
    _run_tool([tool("pg_restore"), "--clean", "--if-exists", "--no-owner", "--single-transaction",
               "--no-password", f"--dbname=dbname='{dbname}'", str(path)], env)

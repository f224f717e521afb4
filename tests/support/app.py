"""Helpers to run the real app (in-process TestClient or `ledgerllm` subprocesses) in tests."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import msgspec
import psycopg
from litestar.testing import TestClient

from litestar import Litestar

from api.app import app_shape, create_app
from infrastructure.settings import Settings, load_settings

LEDGERLLM = str(Path(sys.executable).parent / "ledgerllm")
SECRET_STORES = {"jwt-secret", "secrets.json"}


@dataclass
class Backend:
    """Where a test's data lives: a temp dir, plus PostgreSQL and Redis when scaled out."""

    name: str
    data_dir: Path
    database_url: str | None = None
    redis_url: str | None = None

    def settings(self, **overrides: Any) -> Settings:
        return load_settings({}, data_dir=self.data_dir, database_url=self.database_url,
                             redis_url=self.redis_url, **overrides)

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
        env["DATA_DIR"] = str(self.data_dir)
        if self.database_url:
            env["DATABASE_URL"] = self.database_url
        if self.redis_url:
            env["REDIS_URL"] = self.redis_url
        env.update(extra)
        return env

    def cli(self, *args: str, input: str | None = None, check: bool = True,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """Run `ledgerllm ARGS` as a subprocess against this backend (`env`: more variables)."""
        result = subprocess.run([LEDGERLLM, *args], env=self.env(**(env or {})), input=input if input is not None else "",
                                capture_output=True, text=True, timeout=600)
        if check and result.returncode != 0:
            raise AssertionError(f"ledgerllm {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
        return result

    # raw access to the event store, behind the app's back ------------------------------------
    def raw_events(self) -> list[dict[str, Any]]:
        """Every stored event: position, topic and decoded state, read with plain SQL."""
        if self.database_url:
            with psycopg.connect(self.database_url) as conn:
                rows = conn.execute(
                    "SELECT notification_id, topic, state FROM ledger_events ORDER BY notification_id").fetchall()
        else:
            with sqlite3.connect(self.data_dir / "events.db") as conn:
                rows = conn.execute("SELECT rowid, topic, state FROM stored_events ORDER BY rowid").fetchall()
        return [{"position": p, "topic": t, "state": msgspec.json.decode(bytes(s))} for p, t, s in rows]

    def events(self) -> list[Any]:
        """Every stored event as the app reads it: decoded, sealed fields opened (or erased)."""
        from application.ledger import Ledger
        from infrastructure.eventstore import ledger_env

        ledger = Ledger(env=ledger_env(self.settings()))
        try:
            return [ledger.mapper.to_domain_event(n) for n in ledger.recorder.select_notifications(1, 1_000_000)]
        finally:
            ledger.close()

    def all_stored_bytes(self) -> bytes:
        """Everything stored under DATA_DIR (but the two secret stores, `jwt-secret` and
        `secrets.json`, which exist to hold secrets) and every PostgreSQL row, as bytes."""
        blobs = [p.read_bytes() for p in self.data_dir.rglob("*")
                 if p.is_file() and p.name not in SECRET_STORES]
        if self.database_url:
            with psycopg.connect(self.database_url) as conn:
                tables = [r[0] for r in conn.execute(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")]
                for table in tables:
                    for row in conn.execute(f'SELECT * FROM "{table}"'):
                        blobs.append(repr(row).encode())
                        blobs += [bytes(v) for v in row if isinstance(v, (bytes, memoryview))]
        return b"\n".join(blobs)


@contextmanager
def client_for(backend: Backend, **overrides: Any) -> Iterator[TestClient]:
    """The real app on `backend`, started (its runtime opened) for the block. Building Litestar's
    routes costs about a second, so a stopped app of the same shape is started again with these
    settings instead (each start-up opens a fresh runtime); apps in use are never shared.
    `clock`: what the runtime tells time by (a `FakeClock` for expiry without sleeping)."""
    clock = overrides.pop("clock", None)
    settings = backend.settings(**overrides)
    shape = app_shape(settings)
    idle = _IDLE_APPS.setdefault(shape, [])
    app = idle.pop() if idle else create_app(settings)
    app.state.settings = settings
    app.state.clock = clock
    try:
        with TestClient(app) as client:
            yield client
    finally:
        idle.append(app)


_IDLE_APPS: dict[tuple[object, ...], list[Litestar]] = {}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def owner_key(client: TestClient, **body: Any) -> str:
    """Issue an owner key the way an operator does first: through the use case the CLI calls."""
    from application.apikeys import CreateApiKey, create_api_key
    from application.users import principal_for

    ctx = client.app.state.runtime.ctx
    owner = principal_for(ctx, ctx.accounts.user(ctx.accounts.owner_id()))
    return create_api_key(ctx, CreateApiKey(principal=owner, correlation_id="test-setup", **body)).secret


def multi_user_keys(client: TestClient) -> dict[str, str]:
    """Switch to multi-user mode and return a full-access key for an admin, a manager and a
    default user (plus their user ids under `<role>_id`), all made through the HTTP API."""
    admin = owner_key(client)
    response = client.post("/api/system/enable-multi-user", json={"username": "boss", "password": "boss-password"},
                           headers=bearer(admin))
    assert response.json() == {"success": True, "error": None}, response.text
    keys: dict[str, Any] = {"admin": admin, "admin_id": 1}
    for role in ("manager", "default"):
        user = client.post("/api/v1/admin/users/new", headers=bearer(admin),
                           json={"username": f"{role}-user", "password": f"{role}-password", "role": role}).json()
        assert user["error"] is None, user
        keys[f"{role}_id"] = user["user"]["id"]
        keys[role] = client.post("/api/admin/generate-api-key", json={"userId": user["user"]["id"]},
                                 headers=bearer(admin)).json()["apiKey"]["secret"]
    return keys

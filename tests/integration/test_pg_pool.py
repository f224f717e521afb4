"""One PostgreSQL pool per process: the store and every read model of a runtime (or of two
runtimes in one process) draw on it; it closes with the last of them."""

from __future__ import annotations

import os

import psycopg

from api.wiring import open_runtime
from infrastructure.pg_pool import CLI_POOL, PoolSize, open_pools
from infrastructure.settings import load_settings, postgres_env
from tests.support.app import Backend, client_for


def _named(pg_url: str, name: str) -> int:
    with psycopg.connect(pg_url) as conn:
        return conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (name,)).fetchone()[0]


def test_a_cli_runtime_and_its_views_share_one_small_pool(tmp_path, pg_url):
    dbname = postgres_env(pg_url)["POSTGRES_DBNAME"]
    settings = load_settings({}, data_dir=tmp_path / "data", database_url=pg_url, embed_model=False)
    name = f"ledgerllm-cli-{os.getpid()}"
    first = open_runtime(settings)
    second = open_runtime(settings)
    try:
        assert open_pools(dbname) == {name: CLI_POOL}
        assert 1 <= _named(pg_url, name) <= CLI_POOL.max
    finally:
        first.close()
    assert open_pools(dbname) == {name: CLI_POOL}  # the second runtime still uses it
    assert second.ctx.accounts.is_multi_user() is False
    second.close()
    assert open_pools(dbname) == {}


def test_the_app_draws_on_a_server_sized_pool(tmp_path, pg_url, redis_url):
    backend = Backend("postgres", tmp_path / "data", pg_url, redis_url)
    dbname = postgres_env(pg_url)["POSTGRES_DBNAME"]
    with client_for(backend, embed_model=False, pg_pool_size=3, pg_pool_max=7) as client:
        assert client.get("/api/health/ready").status_code == 200
        assert open_pools(dbname) == {f"ledgerllm-serve-{os.getpid()}": PoolSize(3, 7)}
    assert open_pools(dbname) == {}

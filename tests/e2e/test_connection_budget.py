"""PostgreSQL connections per process: a real `ledgerllm serve` keeps at most 5 open while idle
and at most 12 under a burst of concurrent requests (one pool for the store and every read
model, plus the blob store's own); a CLI command beside it uses at most 3. Counted in
`pg_stat_activity` by `application_name` = `ledgerllm-<role>-<pid>`."""

from __future__ import annotations

import json
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest

from tests.support.app import LEDGERLLM, Backend
from tests.support.process import get, running_server, send, wait_until

IDLE_BUDGET, LOAD_BUDGET, CLI_BUDGET = 5, 12, 3
BURST = 48  # requests in flight at once: more than the pool's 10 connections


def _count(monitor: psycopg.Connection, name: str) -> int:
    return monitor.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                           (name,)).fetchone()[0]


class _Sampler:
    """Counts a process's connections every few milliseconds in a thread; keeps the highest."""

    def __init__(self, pg_url: str, name: str) -> None:
        self.monitor = psycopg.connect(pg_url, autocommit=True)
        self.name, self.highest, self.samples = name, 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.highest = max(self.highest, _count(self.monitor, self.name))
            self.samples += 1
            self._stop.wait(0.005)

    def __enter__(self) -> _Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.monitor.close()


def test_a_server_and_a_cli_command_stay_within_their_connection_budgets(tmp_path, pg_url, redis_url):
    backend = Backend("postgres", tmp_path / "data", pg_url, redis_url)
    key = backend.cli("api-keys", "create", "--name", "budget").stdout.strip().splitlines()[-1]
    with running_server(backend, tmp_path / "server.log") as server, \
            psycopg.connect(pg_url, autocommit=True) as monitor:
        server.wait_warm()
        name = f"ledgerllm-serve-{server.proc.pid}"
        assert get(server.url + "/api/v1/workspaces", key)[0] == 200
        wait_until(lambda: _count(monitor, name), f"connections named {name}")
        with _Sampler(pg_url, name) as quiet:  # a while with nothing to do but the follower's polls
            wait_until(lambda: quiet.samples >= 100, "samples of the idle server")
        assert quiet.highest <= IDLE_BUDGET, f"{quiet.highest} connections idle"

        def request(i: int) -> int:
            if i % 3 == 0:
                return send("POST", server.url + "/api/v1/workspace/new", key,
                            json.dumps({"name": f"burst {i}"}).encode())[0]
            return get(server.url + ("/api/v1/workspaces" if i % 3 == 1 else "/api/v1/auth"), key)[0]

        with _Sampler(pg_url, name) as under_load, ThreadPoolExecutor(BURST) as pool:
            for _ in range(3):
                statuses = list(pool.map(request, range(BURST)))
                assert set(statuses) == {200}, statuses
        assert 0 < under_load.highest <= LOAD_BUDGET, f"{under_load.highest} connections under load"
        assert _count(monitor, name) <= LOAD_BUDGET

        # A CLI command beside it: its own small pool (verify also opens a scratch copy of
        # every read model, all on that pool).
        cli = subprocess.Popen([LEDGERLLM, "verify"], env=backend.env(), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
        with _Sampler(pg_url, f"ledgerllm-cli-{cli.pid}") as command:
            out, err = cli.communicate(timeout=600)
        assert cli.returncode == 0, err
        assert "read models equal their rebuild" in err, err
        assert 0 < command.highest <= CLI_BUDGET, f"the CLI used {command.highest} connections"
        assert _count(monitor, name) <= LOAD_BUDGET


@pytest.mark.parametrize("env, name", [
    ({"PG_POOL_SIZE": "0"}, "PG_POOL_SIZE"), ({"PG_POOL_SIZE": "4", "PG_POOL_MAX": "3"}, "PG_POOL_MAX"),
    ({"PG_POOL_MAX": "lots"}, "PG_POOL_MAX"), ({"PG_PREPARED_STATEMENTS": "maybe"}, "PG_PREPARED_STATEMENTS"),
])
def test_bad_pool_settings_are_refused_with_their_name(env, name):
    from infrastructure.settings import SettingsError, load_settings

    with pytest.raises(SettingsError, match=name):
        load_settings(env)
    assert load_settings({"PG_PREPARED_STATEMENTS": "off"}).pg_prepared_statements is False

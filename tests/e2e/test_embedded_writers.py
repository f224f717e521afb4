"""The embedded store (SQLite) shared by a busy `ledgerllm serve` process and the CLI: a CLI
command that writes, or opens every view (creating tables), waits for the server's write lock
instead of failing with `database is locked`."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tests.support.app import LEDGERLLM
from tests.support.process import get, running_server, send

CLI_RUNS = 24  # `api-keys create` runs; as many `projections status` runs beside them
WRITERS = 4  # client threads writing through the server the whole time


def _cli(backend: Any, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([LEDGERLLM, *args], env=backend.env(), capture_output=True, text=True, timeout=300)


def _write_load(url: str, key: str, stop: threading.Event, done: list[int], errors: list[Any]) -> None:
    """Workspaces made, given a thread, and deleted again: writes to the events and to the
    library, chats, vectors and audit views, one after another."""
    n = 0
    while not stop.is_set():
        n += 1
        status, body = send("POST", f"{url}/api/v1/workspace/new", key, json.dumps({"name": f"Load {n}"}).encode())
        if status != 200:
            errors.append(("new", status, body))
            return
        slug = json.loads(body)["workspace"]["slug"]
        for method, path, payload in (("POST", f"/api/v1/workspace/{slug}/thread/new", b"{}"),
                                      ("DELETE", f"/api/v1/workspace/{slug}", None)):
            status, body = send(method, url + path, key, payload)
            if status != 200:
                errors.append((path, status, body))
                return
        done.append(n)


def test_cli_writers_beside_a_busy_embedded_server_wait_instead_of_failing(sqlite_backend, tmp_path):
    admin = sqlite_backend.cli("api-keys", "create", "--name", "load").stdout.strip()
    with running_server(sqlite_backend, tmp_path / "server.log", env={"LOG_LEVEL": "WARNING"}) as server:
        stop, done, errors = threading.Event(), [], []
        writers = [threading.Thread(target=_write_load, args=(server.url, admin, stop, done, errors))
                   for _ in range(WRITERS)]
        for writer in writers:
            writer.start()
        try:
            deadline = time.monotonic() + 60
            while len(done) < WRITERS and not errors:  # the load is on before the CLI starts
                assert time.monotonic() < deadline, "the server never completed a write"
                time.sleep(0.05)
            before = len(done)
            with ThreadPoolExecutor(max_workers=3) as pool:
                runs = [pool.submit(_cli, sqlite_backend, "api-keys", "create", "--name", f"cli-{i}")
                        for i in range(CLI_RUNS)]
                runs += [pool.submit(_cli, sqlite_backend, "projections", "status") for _ in range(CLI_RUNS)]
                results = [run.result() for run in runs]
            during = len(done) - before
        finally:
            stop.set()
            for writer in writers:
                writer.join(timeout=60)
        failed = [(r.args[1:], r.returncode, r.stderr[-2000:]) for r in results if r.returncode != 0]
        assert not failed, failed
        assert not errors, errors
        assert during >= WRITERS, f"only {during} write rounds completed while the CLI ran: no contention tested"
        secrets = [r.stdout.strip() for r in results[:CLI_RUNS]]
        assert len(set(secrets)) == CLI_RUNS and all(s.startswith("sk-") for s in secrets)
        for secret in secrets:  # every key the CLI made works on the running server
            assert get(server.url + "/api/v1/auth", secret)[:2] == (200, b'{"authenticated":true}')
        statuses = [r.stdout for r in results[CLI_RUNS:]]
        assert all(line.split()[0] in {"accounts", "api_keys", "library", "vectors", "chats", "audit_log"}
                   for out in statuses for line in out.splitlines()), statuses[0]
    assert "database is locked" not in (tmp_path / "server.log").read_text()

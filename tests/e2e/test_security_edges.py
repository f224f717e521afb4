"""Edges a security audit of the running server found: file modes under DATA_DIR, forwarded
headers believed only from named proxies, and request ids a caller cannot forge."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import urllib.request

from tests.support.app import LEDGERLLM, bearer, client_for, owner_key
from tests.support.process import running_server


def _mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_data_dir_and_its_files_are_private_whatever_the_umask(sqlite_backend, tmp_path):
    backend = sqlite_backend
    env = backend.env()
    # a permissive shell: the CLI and the server must not inherit it
    made = subprocess.run(["sh", "-c", f"umask 022; exec {LEDGERLLM} api-keys create --name modes"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    with running_server(backend, tmp_path / "server.log") as server:
        request = urllib.request.Request(server.url + "/api/v1/document/raw-text", method="POST", data=json.dumps(
            {"textContent": "private words", "metadata": {"title": "t"}}).encode(),
            headers={**bearer(key), "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as r:
            assert r.status == 200
    data = backend.data_dir
    assert _mode(data) == 0o700
    entries = list(data.rglob("*"))
    assert any(p.name == "events.db" for p in entries) and any(p.parent.name == "blobs" for p in entries)
    for path in entries:
        if path.is_symlink():
            continue
        expected = 0o700 if path.is_dir() else 0o600
        assert _mode(path) == expected, (path, oct(_mode(path)))


def test_an_existing_world_readable_data_dir_is_tightened_on_start(sqlite_backend):
    with client_for(sqlite_backend, embed_model=False):
        pass
    data = sqlite_backend.data_dir
    data.chmod(0o755)
    (data / "events.db").chmod(0o644)
    with client_for(sqlite_backend, embed_model=False):
        pass
    assert _mode(data) == 0o700 and _mode(data / "events.db") == 0o600


def _login_statuses(url: str, attempts: int, forwarded: bool) -> list[int]:
    statuses = []
    for n in range(attempts):
        headers = {"Content-Type": "application/json"}
        if forwarded:
            headers["X-Forwarded-For"] = f"203.0.113.{n + 1}"
        request = urllib.request.Request(url + "/api/request-token", method="POST", headers=headers,
                                         data=json.dumps({"password": "wrong-password"}).encode())
        try:
            with urllib.request.urlopen(request, timeout=30) as r:
                statuses.append(r.status)
        except urllib.error.HTTPError as e:
            statuses.append(e.code)
    return statuses


def test_forwarded_for_is_believed_only_from_named_proxies(sqlite_backend, tmp_path):
    env = {"LOGIN_MAX_ATTEMPTS": "2", "AUTH_TOKEN": "the-owner-password"}
    with running_server(sqlite_backend, tmp_path / "a.log", env=env) as server:
        statuses = _login_statuses(server.url, 5, forwarded=True)
    assert statuses[:2] == [401, 401] and 429 in statuses[2:], statuses  # rotating the header changes nothing
    with running_server(sqlite_backend, tmp_path / "b.log", env={**env, "FORWARDED_ALLOW_IPS": "127.0.0.1"}) as server:
        statuses = _login_statuses(server.url, 5, forwarded=True)
    assert statuses == [401] * 5, statuses  # behind a named proxy, each client address has its own limit


def test_a_caller_cannot_choose_an_unsafe_or_reserved_request_id(client, backend):
    key = owner_key(client)
    for forged in ("cli-0123456789abcdef", "CLI-0123456789abcdef", "install-12345678", "x" * 65, "short", "a b c d e f g h"):
        response = client.post("/api/system/generate-api-key", json={"name": forged[:20]},
                               headers={**bearer(key), "X-Request-Id": forged})
        assert response.status_code == 200 and response.headers["x-request-id"] != forged
        issued = [e for e in backend.raw_events() if e["topic"].endswith("ApiKey.Issued")][-1]
        assert issued["state"]["correlation_id"] == response.headers["x-request-id"]
    kept = client.get("/api/ping", headers={"X-Request-Id": "trace.0123-4567_89"})
    assert kept.headers["x-request-id"] == "trace.0123-4567_89"

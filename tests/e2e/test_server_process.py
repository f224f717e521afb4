"""`ledgerllm serve` as a real process: start-up, the CLI beside it, two processes on
PostgreSQL and Redis, a clean stop."""

from __future__ import annotations

import json

from tests.support.process import ServerProcess, get, running_server, send


def test_server_starts_serves_and_stops_cleanly(sqlite_backend, tmp_path):
    server = ServerProcess(sqlite_backend, tmp_path / "server.log")
    try:
        server.wait_ready()
        status, body, headers = get(server.url + "/api/ping")
        assert status == 200 and json.loads(body) == {"online": True} and "x-request-id" in {k.lower() for k in headers}
        key = sqlite_backend.cli("api-keys", "create").stdout.strip()  # the CLI beside a running server
        assert get(server.url + "/api/v1/auth", key)[:2] == (200, b'{"authenticated":true}')
        assert get(server.url + "/api/v1/auth", "sk-wrong")[0] == 403
    finally:
        # uvicorn re-raises the SIGTERM it handled once shutdown is done, hence -15
        assert server.stop() in (0, -15)
    log = (tmp_path / "server.log").read_text()
    assert "ledgerllm stopped" in log and "Traceback" not in log
    assert "GET /api/v1/auth 200" in log and key not in log
    assert (sqlite_backend.data_dir / "events.db").exists()


def test_two_server_processes_share_postgres_and_redis(pg_backend, tmp_path):
    with running_server(pg_backend, tmp_path / "a.log") as a, running_server(pg_backend, tmp_path / "b.log") as b:
        admin = pg_backend.cli("api-keys", "create").stdout.strip()
        status, body = send("POST", a.url + "/api/system/generate-api-key", admin, b'{"name": "shared"}')
        assert status == 200
        new = json.loads(body)["apiKey"]
        assert get(b.url + "/api/v1/auth", new["secret"])[0] == 200  # read-after-write across processes
        assert get(a.url + "/api/v1/auth", new["secret"])[0] == 200
        listed = json.loads(get(b.url + "/api/system/api-keys", admin)[1])["apiKeys"]
        assert new["id"] in [k["id"] for k in listed]
        assert send("DELETE", b.url + f"/api/system/api-key/{new['id']}", admin)[0] == 200
        assert get(a.url + "/api/v1/auth", new["secret"])[0] == 403

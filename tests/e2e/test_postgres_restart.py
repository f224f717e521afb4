"""PostgreSQL restarted under a running server (every pooled connection broken): once it is
back, no request answers 500 and nothing acknowledged before the restart is lost."""

from __future__ import annotations

import json

from tests.support.app import Backend
from tests.support.process import get, running_server, send


def test_no_500_after_postgres_comes_back(tmp_path, pg_url, redis_url, postgres_server):
    backend = Backend("postgres", tmp_path / "data", pg_url, redis_url)
    key = backend.cli("api-keys", "create", "--name", "ops").stdout.strip().splitlines()[-1]
    with running_server(backend, tmp_path / "server.log") as server:
        server.wait_warm()  # ready from here on, but for the restart
        created = [send("POST", server.url + "/api/v1/workspace/new", key, json.dumps({"name": f"before {i}"}).encode())
                   for i in range(3)]
        assert [status for status, _ in created] == [200, 200, 200]

        postgres_server.restart()

        statuses = []
        for i in range(3):  # each kind of pooled connection: the store, the views, the auth lookup
            statuses.append(get(server.url + "/api/v1/workspaces", key)[0])
            statuses.append(send("POST", server.url + "/api/v1/workspace/new", key,
                                 json.dumps({"name": f"after {i}"}).encode())[0])
            statuses.append(get(server.url + "/api/health/ready")[0])
        assert 500 not in statuses and set(statuses) == {200}, statuses
        names = {w["name"] for w in json.loads(get(server.url + "/api/v1/workspaces", key)[1])["workspaces"]}
        assert {f"before {i}" for i in range(3)} | {f"after {i}" for i in range(3)} <= names

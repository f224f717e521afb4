"""`ledgerllm events tail|show|export`, `ledgerllm audit` and `GET /api/v1/admin/audit`, on a
store filled through the HTTP API, with the CLI run as subprocesses on both backends."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
from datetime import datetime

from tests.support.app import LEDGERLLM, bearer, client_for, multi_user_keys, owner_key

RECORD_FIELDS = {"position", "timestamp", "type", "topic", "aggregate_id", "version", "actor_user_id",
                 "actor_api_key_id", "correlation_id", "payload"}
META = {"timestamp", "originator_topic", "actor_user_id", "actor_api_key_id", "correlation_id"}
PASSWORDS = ("boss-password", "manager-password", "default-password")


def _fill(client) -> dict:
    """Users and their keys, a workspace (created, renamed), an invite by the manager, a revoked key."""
    keys = multi_user_keys(client)
    admin = bearer(keys["admin"])
    ws = client.post("/api/v1/workspace/new", headers=admin, json={"name": "Audit space"}).json()["workspace"]
    assert client.post(f"/api/v1/workspace/{ws['slug']}/update", headers=admin,
                       json={"name": "Audit room"}).status_code == 200
    invite = client.post("/api/v1/admin/invite/new", headers=bearer(keys["manager"]))  # the manager acts too
    assert invite.status_code == 200, invite.text
    extra = client.post("/api/admin/generate-api-key", headers=admin, json={"name": "spare"}).json()["apiKey"]
    assert client.delete(f"/api/admin/api-key/{extra['id']}", headers=admin).status_code == 200
    keys["spare"] = extra["secret"]
    keys["workspace"] = ws
    return keys


def _lines(result) -> list[dict]:
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_events_tail_show_and_export(backend):
    with client_for(backend, embed_model=False) as client:
        keys = _fill(client)
    raw = backend.raw_events()

    export = _lines(backend.cli("events", "export"))
    assert len(export) == len(raw) and [r["position"] for r in export] == [r["position"] for r in raw]
    assert all(a < b for a, b in zip([r["position"] for r in export], [r["position"] for r in export][1:]))
    for record, stored in zip(export, raw):
        assert set(record) == RECORD_FIELDS
        assert record["topic"] == stored["topic"] and record["type"] == stored["topic"].split(":")[1]
        assert record["timestamp"].endswith("Z") and record["actor_user_id"] >= 1 and record["correlation_id"]
        assert set(stored["state"]) - META == set(record["payload"])
        assert {k: v for k, v in stored["state"].items() if k in record["payload"]} == record["payload"]
    text = json.dumps(export)
    for secret in (keys["admin"], keys["manager"], keys["default"], keys["spare"], *PASSWORDS):
        assert secret not in text

    tail = _lines(backend.cli("events", "tail", "--json", "--limit", "5"))
    assert [r["position"] for r in tail] == [r["position"] for r in export[-5:]]
    assert tail[-1]["type"] == "ApiKey.Revoked" and tail[-1]["actor_user_id"] == 1
    assert tail[-1]["actor_api_key_id"] == 1 and len(tail[-1]["correlation_id"]) > 8
    default_tail = backend.cli("events", "tail").stdout.splitlines()
    assert len(default_tail) == 20 and "ApiKey.Revoked" in default_tail[-1] and "user 1 key 1" in default_tail[-1]

    mine = _lines(backend.cli("events", "tail", "--json", "--type", "ApiKey", "--user", "boss", "--limit", "100"))
    assert mine == [r for r in export if r["type"].startswith("ApiKey.") and r["actor_user_id"] == 1]
    assert {r["type"] for r in mine} == {"ApiKey.Issued", "ApiKey.Revoked"}
    manager_id = keys["manager_id"]
    invites = _lines(backend.cli("events", "tail", "--json", "--type", "Invite.Created", "--user", str(manager_id)))
    assert len(invites) == 1 and invites == [r for r in export if r["actor_user_id"] == manager_id
                                             and r["type"] == "Invite.Created"]

    aggregate = next(r for r in export if r["type"] == "Workspace.Created")["aggregate_id"]
    history = _lines(backend.cli("events", "show", aggregate, "--json"))
    assert history == [r for r in export if r["aggregate_id"] == aggregate]
    assert [r["version"] for r in history] == list(range(1, len(history) + 1)) and len(history) >= 2
    one = _lines(backend.cli("events", "show", str(history[-1]["position"]), "--json"))
    assert one == [history[-1]]

    since, until = export[len(export) // 3]["timestamp"], export[-4]["position"]
    bounded = _lines(backend.cli("events", "export", "--since", since, "--until", str(until)))
    assert bounded and bounded == [r for r in export
                                   if _moment(r["timestamp"]) >= _moment(since) and r["position"] <= until]

    for args, message in ((["events", "show", "nonsense"], "aggregate id"),
                          (["events", "show", "9" * 20], "no event at position"),  # was an OverflowError
                          (["events", "export", "--since", "yesterday"], "ISO 8601"),
                          (["events", "export", "--since", "0001-01-01T00:00:00+18:00"], "outside years 1 to 9999")):
        failed = backend.cli(*args, check=False)
        assert failed.returncode != 0 and message in failed.stderr and "Traceback" not in failed.stderr


def _moment(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _audit(client, secret: str, **params) -> dict:
    response = client.get("/api/v1/admin/audit", headers=bearer(secret), params=params)
    assert response.status_code == 200, response.text
    return response.json()


def _snake(row: dict) -> dict:
    return {"position": row["position"], "time": row["time"], "actor_user_id": row["actorUserId"],
            "actor_api_key_id": row["actorApiKeyId"], "correlation_id": row["correlationId"], "type": row["type"],
            "aggregate_id": row["aggregateId"], "summary": row["summary"]}


def test_audit_cli_and_http_agree_filter_paginate_and_refuse(backend):
    with client_for(backend, embed_model=False) as client:
        keys = _fill(client)
        admin = keys["admin"]
        everything = _audit(client, admin, limit=1000)
        rows = everything["events"]
        assert everything["total"] == len(rows) == len(backend.raw_events()) and everything["hasMore"] is False
        assert [r["position"] for r in rows] == sorted((r["position"] for r in rows), reverse=True)
        issued = next(r for r in rows if r["type"] == "ApiKey.Issued" and "spare" in r["summary"])
        assert issued["summary"].startswith("ApiKey.Issued key_id=") and len(issued["summary"]) <= 120
        assert issued["actorUserId"] == 1 and issued["actorApiKeyId"] == 1 and issued["correlationId"]

        by_user = _audit(client, admin, user="manager-user")
        assert by_user["events"] == [r for r in rows if r["actorUserId"] == keys["manager_id"]]
        assert _audit(client, admin, user=str(keys["manager_id"]))["events"] == by_user["events"]
        assert _audit(client, admin, key="1")["events"] == [r for r in rows if r["actorApiKeyId"] == 1]
        assert _audit(client, admin, type="Workspace")["events"] == [
            r for r in rows if r["type"].startswith("Workspace.")]
        middle = rows[len(rows) // 2]
        assert _audit(client, admin, since=middle["time"])["events"] == [r for r in rows if r["time"] >= middle["time"]]
        assert _audit(client, admin, until=str(middle["position"]), limit=1000)["events"] == [
            r for r in rows if r["position"] <= middle["position"]]

        first = _audit(client, admin, limit=3)
        second = _audit(client, admin, limit=3, offset=3)
        assert first["events"] + second["events"] == rows[:6] and first["hasMore"] and first["total"] == len(rows)
        assert _audit(client, admin, offset=len(rows) - 1)["hasMore"] is False

        for bad in ({"since": "yesterday"}, {"limit": "0"}, {"limit": "1001"}, {"offset": "-1"}, {"key": "k"},
                    {"type": "no such type!"}, {"user": "ghost"}):
            response = client.get("/api/v1/admin/audit", headers=bearer(admin), params=bad)
            assert response.status_code == 400 and isinstance(response.json()["error"], str), (bad, response.text)
        for who in ("manager", "default"):
            refused = client.get("/api/v1/admin/audit", headers=bearer(keys[who]))
            assert refused.status_code == 403 and "error" in refused.json()
        assert client.get("/api/v1/admin/audit").status_code == 403
        read_only = client.post("/api/admin/generate-api-key", headers=bearer(admin),
                                json={"scopes": ["read"]}).json()["apiKey"]["secret"]
        assert client.get("/api/v1/admin/audit", headers=bearer(read_only)).status_code == 403

        cli_rows = _lines(backend.cli("audit", "--json", "--limit", "1000"))
        assert cli_rows == [_snake(r) for r in _audit(client, admin, limit=1000)["events"]]
    invites = _lines(backend.cli("audit", "--json", "--user", "manager-user", "--type", "Invite"))
    assert invites and invites == [
        r for r in cli_rows if r["actor_user_id"] == keys["manager_id"] and r["type"].startswith("Invite.")]
    assert _lines(backend.cli("audit", "--json", "--key", "1", "--limit", "2", "--offset", "1")) == [
        r for r in cli_rows if r["actor_api_key_id"] == 1][1:3]
    human = backend.cli("audit", "--limit", "2")
    assert len(human.stdout.splitlines()) == 2 and "--offset 2" in human.stderr
    bad = backend.cli("audit", "--until", "soon", check=False)
    assert bad.returncode != 0 and "ISO 8601" in bad.stderr


def test_audit_log_rebuilt_from_zero_gives_identical_rows(backend):
    from api.wiring import open_runtime

    with client_for(backend, embed_model=False) as client:
        _fill(client)
    runtime = open_runtime(backend.settings())  # no follower thread: nothing rebuilds behind the test's back
    try:
        runner = runtime.runner("audit_log")

        def rows() -> list[dict]:
            with runner.view.read() as tx:
                return tx.all("SELECT * FROM audit_log ORDER BY position")

        before = rows()
        assert len(before) == len(backend.raw_events()) and before[-1]["type"] == "ApiKey.Revoked"
        runner.view.reset(runner.app.name)
        assert rows() == [] and runner.view.position(runner.app.name) == 0
        runner.catch_up()
        assert rows() == before
    finally:
        runtime.close()


def test_tail_follow_prints_new_events_until_ctrl_c(backend):
    with client_for(backend, embed_model=False) as client:
        admin = owner_key(client)
        follower = subprocess.Popen([LEDGERLLM, "events", "tail", "--follow", "--json", "--type", "ApiKey", "-n", "1"],
                                    env=backend.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        watchdog = threading.Timer(300, follower.kill)  # a missing line fails the test instead of hanging it
        watchdog.start()
        try:
            assert json.loads(follower.stdout.readline())["type"] == "ApiKey.Issued"  # the newest, at once
            client.post("/api/system/generate-api-key", headers=bearer(admin), json={"name": "late"})
            fresh = json.loads(follower.stdout.readline())
            assert fresh["type"] == "ApiKey.Issued" and fresh["payload"]["name"] == "late"
        finally:
            follower.send_signal(signal.SIGINT)
            _, err = follower.communicate(timeout=120)
            watchdog.cancel()
        # single-user mode: the owner is an admin, so the audit route answers it too
        page = _audit(client, admin, type="ApiKey.Issued")
        assert page["total"] == 2 and 'name="late"' in page["events"][0]["summary"]
    assert follower.returncode == 0 and "Traceback" not in err


def test_projections_status_shows_each_read_model_against_the_head(backend):
    import json as _json

    from tests.support.app import client_for, owner_key

    with client_for(backend) as client:
        owner_key(client)
    rows = [_json.loads(line) for line in backend.cli("projections", "status", "--json").stdout.splitlines()]
    assert [r["projection"] for r in rows] == ["accounts", "api_keys", "library", "vectors", "chats", "audit_log"]
    head = len(backend.raw_events())
    assert all(r["head"] == head and 0 <= r["behind"] <= head and r["position"] + r["behind"] == head for r in rows)
    assert next(r for r in rows if r["projection"] == "api_keys")["behind"] == 0  # it applied the last event
    human = backend.cli("projections", "status").stdout
    assert "audit_log" in human and "behind" in human

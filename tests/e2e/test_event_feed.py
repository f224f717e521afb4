"""The event feed: `GET /api/v1/admin/events` pages and `GET /api/v1/admin/events/stream` (SSE),
against the real app in-process and a real `ledgerllm serve` process restarted under a consumer."""

from __future__ import annotations

import http.client
import json
import threading
import time
from urllib.parse import urlsplit

import pytest

from tests.support.app import bearer, client_for, multi_user_keys
from tests.support.process import ServerProcess, send

RECORD_FIELDS = {"position", "timestamp", "type", "topic", "aggregate_id", "version", "actor_user_id",
                 "actor_api_key_id", "correlation_id", "payload"}
PASSWORDS = ("boss-password", "manager-password", "default-password")
CREDENTIAL_FIELDS = ("password_hash", "secret_hash", "token_hash", "code_hash")
DEADLINE = 120  # seconds: generous, the machine is shared


def _fill(client) -> dict:
    keys = multi_user_keys(client)
    admin = bearer(keys["admin"])
    ws = client.post("/api/v1/workspace/new", headers=admin, json={"name": "Feed space"}).json()["workspace"]
    assert client.post(f"/api/v1/workspace/{ws['slug']}/update", headers=admin, json={"name": "Feed room"}).status_code == 200
    assert client.post("/api/v1/admin/invite/new", headers=bearer(keys["manager"])).status_code == 200
    spare = client.post("/api/admin/generate-api-key", headers=admin, json={"name": "spare"}).json()["apiKey"]
    assert client.delete(f"/api/admin/api-key/{spare['id']}", headers=admin).status_code == 200
    keys["spare"] = spare["secret"]
    return keys


def _walk(client, key: str, **params) -> list[dict]:
    events, after, pages = [], 0, 0
    while True:
        page = client.get("/api/v1/admin/events", headers=bearer(key), params={"after": after, **params})
        assert page.status_code == 200, page.text
        body = page.json()
        assert set(body) == {"events", "next", "head", "hasMore"}
        assert all(e["position"] > after for e in body["events"]) and body["next"] >= after
        events += body["events"]
        pages += 1
        if not body["hasMore"]:
            return events
        assert pages < 1000
        after = body["next"]


def test_paging_walks_the_whole_log_without_gaps_duplicates_or_secrets(backend):
    with client_for(backend, embed_model=False) as client:
        keys = _fill(client)
        raw = backend.raw_events()
        events = _walk(client, keys["admin"], limit=3)
        assert [e["position"] for e in events] == [r["position"] for r in raw]
        for event, stored in zip(events, raw):
            assert set(event) == RECORD_FIELDS and event["topic"] == stored["topic"]
            assert event["type"] == stored["topic"].split(":")[1] and event["actor_user_id"] >= 1
            assert not set(CREDENTIAL_FIELDS) & set(event["payload"])
        text = json.dumps(events)
        hashes = [s["state"][f] for s in raw for f in CREDENTIAL_FIELDS if s["state"].get(f)]
        assert hashes  # the store does hold them; the feed does not show them
        for secret in (keys["admin"], keys["manager"], keys["default"], keys["spare"], *PASSWORDS, *hashes):
            assert secret not in text

        # filters: same events as filtering the whole log, whatever the page size
        users = _walk(client, keys["admin"], type="User", limit=2)
        assert [e["position"] for e in users] == [
            e["position"] for e in events if e["type"].split(".")[0] == "User"] and users
        by_manager = _walk(client, keys["admin"], user="manager-user")
        assert by_manager and {e["actor_user_id"] for e in by_manager} == {keys["manager_id"]}
        one = client.get("/api/v1/admin/events", headers=bearer(keys["admin"]),
                         params={"after": raw[-1]["position"]}).json()
        assert one == {"events": [], "next": raw[-1]["position"], "head": raw[-1]["position"], "hasMore": False}

        # refusals: bad input 400 {"error"}; not an admin 403; nothing stored by any of them
        head = backend.raw_events()[-1]["position"]
        admin = bearer(keys["admin"])
        for params in ({"after": -1}, {"after": "x"}, {"limit": 0}, {"limit": 1001}, {"type": "not a type"},
                       {"user": "nobody-here"}, {"key": 0}):
            response = client.get("/api/v1/admin/events", headers=admin, params=params)
            assert response.status_code == 400 and set(response.json()) == {"error"}, (params, response.text)
        bad = client.get("/api/v1/admin/events/stream", headers={**admin, "Last-Event-ID": "seven"})
        assert bad.status_code == 400 and set(bad.json()) == {"error"}
        assert client.get("/api/v1/admin/events/stream", headers=admin, params={"after": -5}).status_code == 400
        for role in ("manager", "default"):
            for path in ("/api/v1/admin/events", "/api/v1/admin/events/stream"):
                refused = client.get(path, headers=bearer(keys[role]))
                assert refused.status_code == 403 and set(refused.json()) == {"error"}
        assert client.get("/api/v1/admin/events", headers=bearer("sk-not-a-key")).status_code == 403
        assert len(backend.raw_events()) == head


class Consumer:
    """An SSE client in a thread: records every frame (position, type, data) and comment."""

    def __init__(self) -> None:
        self.frames: list[tuple[int, str, dict]] = []
        self.comments: list[str] = []
        self.ended = threading.Event()
        self.changed = threading.Condition()
        self.error: BaseException | None = None

    def start(self, url: str, key: str, last_event_id: int | None = None, after: int = 0) -> None:
        self.ended.clear()
        parts = urlsplit(url)
        headers = {"Authorization": f"Bearer {key}", "Accept": "text/event-stream"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = str(last_event_id)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=DEADLINE)
        conn.request("GET", f"/api/v1/admin/events/stream?after={after}", headers=headers)
        response = conn.getresponse()
        assert response.status == 200 and response.getheader("Content-Type", "").startswith("text/event-stream")
        threading.Thread(target=self._read, args=(conn, response), daemon=True).start()

    def _read(self, conn: http.client.HTTPConnection, response: http.client.HTTPResponse) -> None:
        fields: dict[str, str] = {}
        try:
            while line := response.readline():
                text = line.decode().rstrip("\n")
                if text.startswith(":"):
                    with self.changed:
                        self.comments.append(text)
                        self.changed.notify_all()
                elif text:
                    name, _, value = text.partition(": ")
                    fields[name] = value
                elif "id" in fields:
                    with self.changed:
                        self.frames.append((int(fields["id"]), fields["event"], json.loads(fields["data"])))
                        self.changed.notify_all()
                    fields = {}
                else:
                    fields = {}
        except BaseException as e:  # noqa: BLE001 - the test reports it
            self.error = e
        finally:
            conn.close()
            self.ended.set()
            with self.changed:
                self.changed.notify_all()

    def wait_for(self, what, timeout: float = DEADLINE) -> None:
        deadline = time.monotonic() + timeout
        with self.changed:
            while not what():
                left = deadline - time.monotonic()
                assert left > 0, f"consumer did not see it in {timeout}s: {self.frames[-3:]} {self.error}"
                self.changed.wait(left)

    def last(self) -> int:
        return self.frames[-1][0] if self.frames else 0


def _create_key(server: ServerProcess, admin: str, name: str) -> None:
    status, body = send("POST", server.url + "/api/system/generate-api-key", admin, json.dumps({"name": name}).encode())
    assert status == 200, body


@pytest.mark.parametrize("which", ["sqlite", "postgres"])
def test_a_consumer_resumes_across_a_server_restart_and_sees_every_event_once_in_order(which, request, tmp_path):
    backend = request.getfixturevalue("sqlite_backend" if which == "sqlite" else "pg_backend")
    env = {"FEED_HEARTBEAT_SECONDS": "0.5"}
    admin = backend.cli("api-keys", "create", "--name", "feed-admin").stdout.strip()
    consumer = Consumer()
    first = ServerProcess(backend, tmp_path / "first.log", env=env)
    try:
        first.wait_ready()
        consumer.start(first.url, admin)
        for n in range(5):
            _create_key(first, admin, f"live-{n}")
        head = backend.raw_events()[-1]["position"]
        consumer.wait_for(lambda: consumer.last() >= head)
        seen = len(consumer.comments)
        consumer.wait_for(lambda: any(c == ": heartbeat" for c in consumer.comments[seen:]))  # quiet: heartbeats
    finally:
        t0 = time.monotonic()
        stopped = first.stop()  # an open stream must not hold up the shutdown
        print("STOP", time.monotonic() - t0)
    assert stopped in (0, -15)
    assert consumer.ended.wait(DEADLINE) and "Traceback" not in (tmp_path / "first.log").read_text()
    for n in range(3):  # written while no server runs
        backend.cli("api-keys", "create", "--name", f"offline-{n}")

    second = ServerProcess(backend, tmp_path / "second.log", env=env)
    try:
        second.wait_ready()
        consumer.start(second.url, admin, last_event_id=consumer.last(), after=0)  # Last-Event-ID wins over after
        for n in range(3):
            _create_key(second, admin, f"after-restart-{n}")
        # a stream opened with a key that is then revoked ends (long before its lifetime is up)
        status, body = send("POST", second.url + "/api/system/generate-api-key", admin,
                            json.dumps({"name": "watcher"}).encode())
        watcher = json.loads(body)["apiKey"]
        watching = Consumer()
        watching.start(second.url, watcher["secret"], after=backend.raw_events()[-1]["position"])
        assert send("DELETE", f"{second.url}/api/system/api-key/{watcher['id']}", admin)[0] == 200
        assert watching.ended.wait(DEADLINE), "the revoked key's stream is still open"
        assert watching.comments[-1] == ": credential no longer valid" and watching.error is None
        head = backend.raw_events()[-1]["position"]
        consumer.wait_for(lambda: consumer.last() >= head)
        assert not consumer.ended.is_set()  # the other key's stream goes on
    finally:
        assert second.stop() in (0, -15)
    raw = backend.raw_events()
    assert [f[0] for f in consumer.frames] == [r["position"] for r in raw]  # every event, once, in order
    assert [f[1] for f in consumer.frames] == [r["topic"].split(":")[1] for r in raw]
    assert all(f[2]["position"] == f[0] and f[2]["type"] == f[1] for f in consumer.frames)
    names = [f[2]["payload"]["name"] for f in consumer.frames if f[1] == "ApiKey.Issued"]
    assert names[-12:] == [*(f"live-{n}" for n in range(5)), *(f"offline-{n}" for n in range(3)),
                           *(f"after-restart-{n}" for n in range(3)), "watcher"]
    assert admin not in json.dumps(consumer.frames)
    assert not any("secret_hash" in f[2]["payload"] for f in consumer.frames)

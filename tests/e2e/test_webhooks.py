"""Webhooks end to end, against real receivers on loopback: every event in order after failures,
with valid signatures and the event feed's body; parking and `ledgerllm webhooks replay-parked`;
the admin routes and the CLI; and two server processes on one PostgreSQL delivering each event
once between them. Backoff is made small with settings; nothing sleeps for a fixed time."""

from __future__ import annotations

import json
import subprocess

from tests.support.app import LEDGERLLM, bearer, client_for, owner_key
from tests.support.process import ServerProcess, get, send
from tests.support.webhook_receiver import WebhookReceiver, wait_until

FAST = {"link_allowlist": frozenset({"127.0.0.1"}), "webhook_backoff_base_seconds": 0.05,
        "webhook_backoff_max_seconds": 0.2, "webhook_poll_seconds": 0.05, "webhook_timeout": 30.0}
FAST_ENV = {"LINK_ALLOWLIST": "127.0.0.1", "WEBHOOK_BACKOFF_BASE_SECONDS": "0.05",
            "WEBHOOK_BACKOFF_MAX_SECONDS": "0.2", "WEBHOOK_POLL_SECONDS": "0.05", "WEBHOOK_TIMEOUT": "30"}


def _cli(backend, *args: str) -> subprocess.CompletedProcess[str]:
    """`ledgerllm ARGS` with the test's settings (LINK_ALLOWLIST lets it add loopback receivers)."""
    result = subprocess.run([LEDGERLLM, *args], env=backend.env(**FAST_ENV), capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr
    return result


def _add(client, key: str, url: str, **body) -> dict:
    response = client.post("/api/v1/admin/webhooks", json={"url": url, **body}, headers=bearer(key))
    assert response.status_code == 200, response.text
    return response.json()


def _webhook(client, key: str, webhook_id: int) -> dict:
    listed = client.get("/api/v1/admin/webhooks", headers=bearer(key)).json()["webhooks"]
    return next(w for w in listed if w["id"] == webhook_id)


def test_a_receiver_that_fails_three_times_then_gets_every_event_in_order_signed(backend):
    with WebhookReceiver(fail_first=3) as receiver, client_for(backend, **FAST) as client:
        key = owner_key(client)
        added = _add(client, key, receiver.url)
        secret, start = added["secret"], added["webhook"]["startPosition"]
        for n in range(3):
            created = client.post("/api/system/generate-api-key", json={"name": f"k{n}"}, headers=bearer(key))
            assert created.status_code == 200, created.text
        head = backend.raw_events()[-1]["position"]
        receiver.wait_for(lambda r: r.taken and r.taken[-1].position >= head)

        feed = client.get(f"/api/v1/admin/events?after={start}&limit=1000", headers=bearer(key)).json()["events"]
        taken = receiver.taken
        assert [r.position for r in taken] == [e["position"] for e in feed]  # each once, in order
        assert [r.event for r in taken] == feed  # the body is the feed's rendering of the event
        assert all(r.signed_by(secret) for r in receiver.received)
        assert all(r.headers["x-ledgerllm-event"] == r.event["type"] for r in taken)
        failed = [r for r in receiver.received if r.answered != 200]
        assert len(failed) == 3 and {r.position for r in failed} == {feed[0]["position"]}  # retried, not skipped
        assert any(e["type"] == "ApiKey.Issued" for e in feed)
        assert secret.encode() not in backend.all_stored_bytes()  # not in an event, a read model or a checkpoint

        # the checkpoint is written just after the receiver answers: wait for it
        state = wait_until(lambda: (s := _webhook(client, key, added["webhook"]["id"])["delivery"])
                           and s["delivered"] == len(feed) and s, what="the checkpoint at the last event")
        assert state["failures"] == 0 and not state["parked"] and state["position"] == feed[-1]["position"]
        metrics = client.get("/metrics").text
        assert 'ledgerllm_webhook_deliveries_total{outcome="delivered"}' in metrics
        assert f'ledgerllm_webhook_lag_events{{webhook="{added["webhook"]["id"]}"}} 0.0' in metrics


def test_a_receiver_that_always_fails_is_parked_and_replay_parked_sends_it_again(sqlite_backend):
    backend = sqlite_backend
    with WebhookReceiver(failing=True) as receiver, client_for(backend, **FAST, webhook_max_attempts=3) as client:
        key = owner_key(client)
        hook = _add(client, key, receiver.url, types=["ApiKey"])["webhook"]
        assert client.post("/api/system/generate-api-key", json={"name": "p"}, headers=bearer(key)).status_code == 200
        state = wait_until(lambda: (_webhook(client, key, hook["id"])["delivery"] or {}).get("parked")
                           and _webhook(client, key, hook["id"])["delivery"], what="parked")
        assert len(receiver.received) == 3
        assert state["parked"] and state["failures"] == 3 and state["lastError"] == "HTTP 500", state
        assert 'ledgerllm_webhook_parked{webhook="%d"} 1.0' % hook["id"] in client.get("/metrics").text

        receiver.failing = False
        replayed = backend.cli("webhooks", "replay-parked")
        assert f"webhook {hook['id']}: sending again" in replayed.stdout
        receiver.wait_for(lambda r: len(r.taken) == 1)
        (delivery,) = receiver.taken
        assert delivery.event["type"] == "ApiKey.Issued" and delivery.position == receiver.received[0].position
        wait_until(lambda: _webhook(client, key, hook["id"])["delivery"]["delivered"] == 1, what="the checkpoint")
        assert not _webhook(client, key, hook["id"])["delivery"]["parked"]
        listed = [json.loads(line) for line in backend.cli("webhooks", "list", "--json").stdout.splitlines()]
        assert [(w["id"], w["delivered"], w["parked"]) for w in listed] == [(hook["id"], 1, False)]
        replays = [e for e in backend.raw_events() if e["topic"].endswith("Webhook.ParkedReplayed")]
        assert len(replays) == 1 and replays[0]["state"]["actor_user_id"] == 1  # the CLI acts as the owner
        assert "removed" in backend.cli("webhooks", "remove", str(hook["id"])).stderr
        wait_until(lambda: client.get("/api/v1/admin/webhooks", headers=bearer(key)).json() == {"webhooks": []},
                   what="the server sees the CLI's removal")


def test_a_removed_webhook_is_sent_nothing_more(sqlite_backend):
    with WebhookReceiver() as removed, WebhookReceiver() as kept, client_for(sqlite_backend, **FAST) as client:
        key = owner_key(client)
        gone = _add(client, key, removed.url, types=["ApiKey"])["webhook"]
        _add(client, key, kept.url, types=["ApiKey"])
        assert client.delete(f"/api/v1/admin/webhooks/{gone['id']}", headers=bearer(key)).json() == {
            "success": True, "error": None}
        assert client.post("/api/system/generate-api-key", json={}, headers=bearer(key)).status_code == 200
        kept.wait_for(lambda r: len(r.taken) == 1)  # the same rounds would have sent it to the removed one first
        assert removed.received == []
        listed = client.get("/api/v1/admin/webhooks?all=true", headers=bearer(key)).json()["webhooks"]
        assert [w["removedAt"] is not None for w in listed] == [True, False]
        assert client.delete(f"/api/v1/admin/webhooks/{gone['id']}", headers=bearer(key)).status_code == 404


def test_admin_routes_refuse_bad_input_with_4xx_and_store_nothing(backend):
    with client_for(backend) as client:  # no LINK_ALLOWLIST: loopback and private hosts are refused
        key = owner_key(client)
        before = len(backend.raw_events())
        for body in ({"url": "http://127.0.0.1:9/hook"}, {"url": "http://10.1.2.3/"}, {"url": "ftp://example.com/"},
                     {"url": "x" * 3000}, {"url": "http://example.com/", "types": ["not a type"]}, {}, {"url": 5}):
            response = client.post("/api/v1/admin/webhooks", json=body, headers=bearer(key))
            assert response.status_code == 400 and response.json()["success"] is False, (body, response.text)
        assert client.delete("/api/v1/admin/webhooks/99", headers=bearer(key)).status_code == 404
        assert client.delete("/api/v1/admin/webhooks/x", headers=bearer(key)).status_code == 400
        assert client.post("/api/v1/admin/webhooks/replay-parked", json={"id": 99},
                           headers=bearer(key)).status_code == 404
        assert len(backend.raw_events()) == before
        denied = client.get("/api/v1/admin/webhooks", headers=bearer(owner_key(client, scopes=("read",))))
        assert denied.status_code == 403


def _issued_after_the_webhook(backend) -> list[int]:
    events = backend.raw_events()
    start = next(e["position"] for e in events if e["topic"].endswith(":Webhook.Added"))
    return [e["position"] for e in events if ":ApiKey." in e["topic"] and e["position"] > start]


def test_two_server_processes_on_one_postgres_deliver_each_event_once(pg_backend, tmp_path):
    """Both servers deliver (whichever holds the lease); when one stops, it hands its lease over
    at once and the other goes on from the checkpoint: every event once, in order."""
    backend = pg_backend
    admin = backend.cli("api-keys", "create", "--name", "hooks").stdout.strip()
    with WebhookReceiver() as receiver:
        added = _cli(backend, "webhooks", "add", receiver.url, "--type", "ApiKey", "--type", "Webhook")
        secret = added.stdout.strip()
        assert secret.startswith("whsec_") and "added webhook 1" in added.stderr, added.stderr
        servers = [ServerProcess(backend, tmp_path / f"s{n}.log", env=FAST_ENV) for n in range(2)]
        try:
            for server in servers:
                server.wait_ready()
            for n in range(8):
                if n == 4:  # half way: the first server stops (and gives up its leases)
                    receiver.wait_for(lambda r: len(r.taken) >= 4)
                    assert servers[0].stop() in (0, -15)
                server = servers[n % 2 if n < 4 else 1]
                status, body = send("POST", server.url + "/api/system/generate-api-key", admin, b"{}")
                assert status == 200, body
            wanted = _issued_after_the_webhook(backend)
            assert len(wanted) == 8
            receiver.wait_for(lambda r: {d.position for d in r.taken} >= set(wanted))
            positions = [d.position for d in receiver.taken]
            seen = [(d.position, d.answered) for d in receiver.received]
            assert positions == sorted(set(positions)) == wanted, seen  # once each, in order, between the two
            assert all(d.signed_by(secret) for d in receiver.received)
            wait_until(lambda: json.loads(get(servers[1].url + "/api/v1/admin/webhooks", admin)[1])
                       ["webhooks"][0]["delivery"]["delivered"] == 8, what="the checkpoint at the last event")
            assert send("DELETE", servers[1].url + "/api/v1/admin/webhooks/1", admin)[0] == 200
            assert json.loads(get(servers[1].url + "/api/v1/admin/webhooks", admin)[1]) == {"webhooks": []}
        finally:
            codes = [s.stop() for s in servers]
        assert set(codes) <= {0, -15}, codes

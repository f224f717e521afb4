"""A stored event that a read model cannot apply stops that read model only: the server still
starts, the other read models and routes keep answering, the stall is reported (status,
metric, readiness) and the routes that read the stalled model answer 503 naming it. An
operator retries after a fix, or skips the event, which the audit log then shows."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

from api.wiring import open_runtime
from application.ledger import Ledger
from domain.chats import Chat
from domain.principal import Actor
from infrastructure.eventstore import ledger_env
from projections.chats import ChatsProjection
from tests.support.app import Backend, bearer, client_for, owner_key
from tests.support.process import get, running_server

TOO_BIG = 2**63  # fits the event (msgspec encodes it) but no signed 64-bit column


@contextmanager
def store_of(backend: Backend) -> Iterator[Ledger]:
    """The event store opened directly: what a buggy release or a hand edit would write."""
    ledger = Ledger(env=ledger_env(backend.settings()))
    try:
        yield ledger
    finally:
        ledger.close()


def append_poison(backend: Backend, chat_id: int) -> int:
    """A `Chat.Recorded` the chats read model cannot store (its workspace id overflows)."""
    chat = Chat.record(Actor(1, None, "poison"), chat_id, workspace_id=TOO_BIG, user_id=1, thread_id=None,
                       session_id=None, embed_id=None, prompt="p", response="r", mode="chat", sources=[],
                       attachments=[], model=None, prompt_tokens=0, completion_tokens=0, latency_ms=0.0,
                       include=True, status="ok", error=None)
    with store_of(backend) as ledger:
        return ledger.save(chat)[-1].notification.id


def _status(backend: Backend) -> dict[str, dict]:
    out = backend.cli("projections", "status", "--json").stdout
    return {row["projection"]: row for row in map(json.loads, out.splitlines())}


def test_a_poison_event_stalls_one_read_model_and_the_rest_keeps_serving(backend, monkeypatch):
    with client_for(backend, embed_model=False) as client:
        key = owner_key(client)
        assert client.post("/api/v1/workspace/new", headers=bearer(key), json={"name": "kept"}).status_code == 200
    poison = append_poison(backend, 900_001)

    with client_for(backend, embed_model=False) as client:  # the server starts on it
        runtime = client.app.state.runtime
        chats = runtime.runner("chats")
        assert chats.stall is not None and chats.stall.position == poison
        assert all(r.stall is None for r in runtime.runners if r.name != "chats")
        # other read models and routes answer
        assert client.get("/api/v1/workspaces", headers=bearer(key)).status_code == 200
        made = client.post("/api/v1/workspace/new", headers=bearer(key), json={"name": "after"})
        assert made.status_code == 200, made.text
        # the routes that read the stalled model fail closed, naming it
        history = client.get("/api/v1/workspace/kept/chats", headers=bearer(key))
        assert history.status_code == 503 and "chats read model is stalled" in history.json()["error"]
        # reported: admin route, metric, readiness
        rows = {p["projection"]: p for p in client.get("/api/v1/admin/projections", headers=bearer(key)).json()["projections"]}
        assert rows["chats"]["position"] < poison
        metrics = client.get("/metrics").text
        assert 'ledgerllm_projection_stalled{projection="chats"} 1.0' in metrics
        assert 'ledgerllm_projection_stalled{projection="accounts"} 0.0' in metrics
        ready = client.get("/api/health/ready")
        assert ready.status_code == 503 and any("chats" in r and str(poison) in r for r in ready.json()["reasons"])
        assert client.get("/api/health").status_code == 200

        # an upgrade fixes the handler: retry applies the event
        handler = ChatsProjection.handlers[Chat.Recorded]

        def clamped(self, tx, e):
            handler(self, tx, e if e.workspace_id < 2**62 else _with(e, workspace_id=0))

        monkeypatch.setitem(ChatsProjection.handlers, Chat.Recorded, clamped)
        assert chats.retry() >= poison and chats.stall is None
        assert client.get("/api/v1/workspace/kept/chats", headers=bearer(key)).status_code == 200
        assert client.get("/api/health/ready").status_code == 200
    assert _status(backend)["chats"]["stalled"] is False


def _with(event: Chat.Recorded, **changes: object) -> Chat.Recorded:
    fields = {k: getattr(event, k) for k in vars(event)}
    return Chat.Recorded(**{**fields, **changes})


def test_skip_is_an_audited_event_and_the_read_model_moves_on(backend):
    with client_for(backend, embed_model=False) as client:
        key = owner_key(client)
    poison = append_poison(backend, 900_002)
    with client_for(backend, embed_model=False) as client:
        assert client.app.state.runtime.runner("chats").stall.position == poison
    status = _status(backend)["chats"]
    assert status["stalled"] and status["stall"]["position"] == poison and "Chat.Recorded" in status["stall"]["topic"]

    refused = backend.cli("projections", "skip", "chats", str(poison - 1), "--reason", "wrong", check=False)
    assert refused.returncode != 0 and f"not stalled at event {poison - 1}" in refused.stderr
    unreasoned = backend.cli("projections", "skip", "chats", str(poison), "--reason", "  ", check=False)
    assert unreasoned.returncode != 0 and "reason" in unreasoned.stderr
    done = backend.cli("projections", "skip", "chats", str(poison), "--reason", "bad workspace id from v0.1")
    assert f"event {poison} skipped" in done.stderr
    assert _status(backend)["chats"]["stalled"] is False

    with client_for(backend, embed_model=False) as client:
        assert client.app.state.runtime.runner("chats").stall is None
        assert client.get("/api/health/ready").status_code == 200
        events = client.get("/api/v1/admin/audit?type=ProjectionControl.EventSkipped", headers=bearer(key)).json()
        [skip] = events["events"]
        assert skip["actorUserId"] == 1 and skip["correlationId"].startswith("cli-")
        assert f"position={poison}" in skip["summary"] and 'reason="bad workspace' in skip["summary"]
    shown = json.loads(backend.cli("events", "show", str(skip["position"]), "--json").stdout)
    assert shown["payload"]["reason"] == "bad workspace id from v0.1" and shown["actor_user_id"] == 1
    # a rebuild from zero passes the skipped event too, and verify agrees with the live rows
    backend.cli("projections", "rebuild", "chats")
    backend.cli("verify", "chats")


def test_the_server_process_starts_on_a_stalled_store(sqlite_backend, tmp_path):
    backend = sqlite_backend
    backend.cli("api-keys", "create", "--name", "boot")
    poison = append_poison(backend, 900_003)
    with running_server(backend, tmp_path / "server.log") as server:
        assert get(server.url + "/api/health")[0] == 200
        status, body, _ = get(server.url + "/api/health/ready")
        assert status == 503 and f"stalled at event {poison}" in body.decode()
    retried = backend.cli("projections", "retry", "chats", check=False)
    assert retried.returncode == 1 and f"still stalled at event {poison}" in retried.stderr


def test_open_runtime_on_a_stalled_store_reports_instead_of_raising(sqlite_backend):
    with client_for(sqlite_backend, embed_model=False):
        pass
    append_poison(sqlite_backend, 900_004)
    runtime = open_runtime(sqlite_backend.settings(embed_model=False))
    try:
        assert runtime.runner("chats").stall is not None
    finally:
        runtime.close()

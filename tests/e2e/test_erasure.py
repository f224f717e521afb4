"""Erasure by crypto-shredding, end to end on SQLite and PostgreSQL: a user's chats (prompt,
reply, attachment text and name) and profile carry a unique plaintext; after the admin route
or `ledgerllm users erase`, it reads as erased in every read model, export and the event
feed, is in no file under DATA_DIR (WAL files included) nor in any PostgreSQL row, nor in a
backup taken afterwards; the digest chain stays intact and every read model equals its rebuild."""

from __future__ import annotations

import base64
import json
import subprocess
import uuid
from pathlib import Path

from tests.support.app import Backend, bearer, client_for, multi_user_keys

ERASED = "[erased]"


def _fill(client, llm, secret: str) -> dict:
    """A default user with a profile and a chat carrying `secret` everywhere; an admin chat."""
    keys = multi_user_keys(client)
    admin, dana, dana_id = bearer(keys["admin"]), bearer(keys["default"]), keys["default_id"]
    assert client.post("/api/v1/workspace/new", headers=admin, json={"name": "shared"}).status_code == 200
    client.post("/api/v1/admin/workspaces/shared/manage-users", headers=admin,
                json={"userIds": [dana_id]}).raise_for_status()
    profile = client.post(f"/api/v1/admin/users/{dana_id}", headers=admin,
                          json={"bio": f"bio {secret}", "pfpFilename": f"{secret}.png"})
    assert profile.json() == {"success": True, "error": None}, profile.text
    attachment = {"name": f"{secret}-notes.txt", "mime": "application/anythingllm-document",
                  "contentString": base64.b64encode(f"attachment text {secret}".encode()).decode()}
    llm.reply(f"reply {secret}")
    chat = client.post("/api/v1/workspace/shared/chat", headers=dana,
                       json={"message": f"question {secret}", "attachments": [attachment]})
    assert chat.status_code == 200 and secret in chat.json()["textResponse"], chat.text
    llm.reply("admin reply")
    assert client.post("/api/v1/workspace/shared/chat", headers=admin, json={"message": "admin keeps this"}).status_code == 200
    history = client.get("/api/v1/workspace/shared/chats", headers=dana).json()["history"]
    assert f"question {secret}" in json.dumps(history) and f"attachment text {secret}" in json.dumps(history)
    return {"admin": admin, "dana": dana, "dana_id": dana_id}


def _reads_erased(client, given: dict, secret: str, by_key: bool = True) -> None:
    """`by_key`: erased through the route with the admin's key (the CLI acts with none)."""
    admin, dana = given["admin"], given["dana"]
    history = client.get("/api/v1/workspace/shared/chats", headers=dana).json()["history"]
    assert [h["content"] for h in history] == [ERASED, ERASED]
    assert secret not in json.dumps(history)
    exports = [client.get(f"/api/v1/system/export-chats?type={t}", headers=admin).text for t in ("json", "csv")]
    feed = client.get("/api/v1/admin/events?limit=500", headers=admin)
    logs = client.post("/api/v1/admin/workspace-chats", headers=admin, json={"offset": 0})
    user = client.get("/api/v1/admin/users", headers=admin).json()["users"]
    for text in (*exports, feed.text, logs.text, json.dumps(user)):
        assert secret not in text
    assert ERASED in exports[0] and "admin keeps this" in exports[0]  # only that user's content
    erased = [e for e in feed.json()["events"] if e["type"] == "User.Erased"]
    assert len(erased) == 1, erased  # who (user and key) and why, never the content
    assert (erased[0]["actor_user_id"], erased[0]["payload"]["user_id"]) == (1, given["dana_id"])
    assert (erased[0]["actor_api_key_id"] is not None) is by_key and "GDPR" in erased[0]["payload"]["reason"]


def _nothing_left(backend: Backend, secret: str, *also: Path, serving: bool = False) -> None:
    """The secret is in no file under DATA_DIR (nor `also`), nor in any PostgreSQL row.
    `serving`: the app is open, so the SQLite WAL files exist (closing removes them)."""
    if serving and not backend.database_url:
        assert {"chats.db-wal", "accounts.db-wal"} <= {p.name for p in backend.data_dir.glob("*.db-wal")}
    hits = [p for p in backend.data_dir.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]
    for root in also:
        hits += [p for p in root.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]
    assert hits == []
    assert secret.encode() not in backend.all_stored_bytes()


def _store_checks_out(backend: Backend) -> None:
    report = json.loads(backend.cli("audit", "verify", "--json").stdout)
    assert report["intact"] and report["problem_count"] == 0, report
    backend.cli("verify")  # every read model equals a fresh rebuild (exit 0)


def test_the_admin_route_erases_a_users_content_everywhere(backend, llm, llm_settings, tmp_path):
    secret = f"kumquat-{uuid.uuid4().hex}"
    with client_for(backend, embed_model=False, **llm_settings) as client:
        given = _fill(client, llm, secret)
        # bad input stores nothing and never 500s
        url = f"/api/v1/admin/users/{given['dana_id']}/erase"
        assert client.post(url, headers=given["admin"], json={}).status_code == 400
        assert client.post(url, headers=given["admin"], json={"reason": "   "}).json()["success"] is False
        assert client.post("/api/v1/admin/users/999/erase", headers=given["admin"], json={"reason": "x"}).status_code == 404
        assert client.post(url, headers=given["dana"], json={"reason": "me"}).status_code in (401, 403)
        done = client.post(url, headers=given["admin"], json={"reason": "GDPR art. 17 request"})
        assert done.status_code == 200, done.text
        assert done.json() == {"success": True, "userId": given["dana_id"], "username": "default-user",
                               "keysDestroyed": 1, "error": None}
        _reads_erased(client, given, secret)
        _nothing_left(backend, secret, serving=True)
    exported = backend.cli("events", "export").stdout
    assert secret not in exported and ERASED in exported
    backup = tmp_path / "backup"
    backend.cli("backup", str(backup))
    if backend.database_url:  # the dump is compressed: search the rows it restores
        rows = subprocess.run(["pg_restore", "--data-only", "-f", "-", str(backup / "postgres.dump")],
                              capture_output=True, check=True).stdout
        assert b"ledger_content_keys" in rows and secret.encode() not in rows
    _store_checks_out(backend)
    _nothing_left(backend, secret, backup)


def test_the_cli_erases_a_user_and_a_rebuild_yields_the_erased_rows(backend, llm, llm_settings):
    secret = f"rhubarb-{uuid.uuid4().hex}"
    with client_for(backend, embed_model=False, **llm_settings) as client:
        given = _fill(client, llm, secret)
    refused = backend.cli("users", "erase", "default-user", check=False)
    assert refused.returncode != 0 and "--reason" in refused.stderr  # a reason is required
    done = json.loads(backend.cli("users", "erase", "default-user", "--reason", "GDPR erasure", "--json").stdout)
    assert done["userId"] == given["dana_id"] and done["keysDestroyed"] == 1
    backend.cli("projections", "rebuild", "chats")
    with client_for(backend, embed_model=False, **llm_settings) as client:
        _reads_erased(client, given, secret, by_key=False)
        # the user goes on; what they write now is sealed under a new key and reads normally
        llm.reply("fresh reply")
        client.post("/api/v1/workspace/shared/chat", headers=given["dana"], json={"message": "after the erasure"})
        history = client.get("/api/v1/workspace/shared/chats", headers=given["dana"]).json()["history"]
        assert [h["content"] for h in history][-2:] == ["after the erasure", "fresh reply"]
        _nothing_left(backend, secret, serving=True)
    _store_checks_out(backend)
    _nothing_left(backend, secret)


def test_chats_stored_before_sealing_read_as_before_and_read_as_erased_after(backend, llm, llm_settings):
    """An exchange stored by the previous release holds plaintext: it reads as it did, and once
    its user is erased it reads as erased too (its stored bytes are never rewritten)."""
    from domain.chats import Chat
    from domain.principal import Actor
    from infrastructure.mapper import MsgspecMapper

    secret = f"quince-{uuid.uuid4().hex}"
    with client_for(backend, embed_model=False, **llm_settings) as client:
        keys = multi_user_keys(client)
        admin, dana, dana_id = bearer(keys["admin"]), bearer(keys["default"]), keys["default_id"]
        client.post("/api/v1/workspace/new", headers=admin, json={"name": "shared"}).raise_for_status()
        client.post("/api/v1/admin/workspaces/shared/manage-users", headers=admin,
                    json={"userIds": [dana_id]}).raise_for_status()
        runtime = client.app.state.runtime
        workspace_id = runtime.ctx.library.workspace("shared").id
        old = Chat.record(Actor(user_id=dana_id, api_key_id=None, correlation_id="old-release"), 900_001,
                          workspace_id=workspace_id, user_id=dana_id, thread_id=None, session_id=None, embed_id=None,
                          prompt=f"old question {secret}", response=f"old reply {secret}", mode="chat",
                          sources=[{"id": "s1", "title": "notes", "text": f"old source {secret}"}], attachments=[],
                          model="m", prompt_tokens=1, completion_tokens=1, latency_ms=1.0, include=True,
                          status="ok", error=None).collect_events()[0]
        ledger = runtime.ctx.ledger
        plain = MsgspecMapper(transcoder=ledger.mapper.transcoder)  # no key ring: the old, plaintext shape
        ledger.recorder.insert_events([plain.to_stored_event(old)])
        runtime.runner("chats").catch_up()
        history = client.get("/api/v1/workspace/shared/chats", headers=dana).json()["history"]
        assert [h["content"] for h in history] == [f"old question {secret}", f"old reply {secret}"]
        assert client.post(f"/api/v1/admin/users/{dana_id}/erase", headers=admin,
                           json={"reason": "GDPR request"}).status_code == 200
        history = client.get("/api/v1/workspace/shared/chats", headers=dana).json()["history"]
        assert [h["content"] for h in history] == [ERASED, ERASED] and secret not in json.dumps(history)
        feed = client.get("/api/v1/admin/events?limit=500", headers=admin).text
        assert secret not in feed and secret not in client.get("/api/v1/system/export-chats?type=json", headers=admin).text
    assert any(secret in json.dumps(e["state"]) for e in backend.raw_events())  # the old bytes stay (see README)
    _store_checks_out(backend)

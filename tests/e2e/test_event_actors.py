"""Every event type, read back raw from the store, records who acted, with which key, in
which request; and no secret is stored anywhere or logged."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from eventsourcing.utils import get_topic

import domain.apikeys
import domain.chats
import domain.documents
import domain.embeds
import domain.invites
import domain.sequence
import domain.system
import domain.threads
import domain.users
import domain.webhooks
import domain.workspaces
from domain.audited import Audited, event_classes
from tests.support.app import bearer, client_for, multi_user_keys, owner_key
from tests.support.clock import FakeClock
from tests.support.webhook_receiver import WebhookReceiver, wait_until


def all_event_topics() -> set[str]:
    topics = set()
    for module in (domain.users, domain.apikeys, domain.invites, domain.system, domain.sequence,
                   domain.workspaces, domain.documents, domain.embeds, domain.chats, domain.threads, domain.webhooks):
        for aggregate in vars(module).values():
            if isinstance(aggregate, type) and issubclass(aggregate, Audited) and aggregate is not Audited:
                topics |= {get_topic(e) for e in event_classes(aggregate)}
    assert len(topics) >= 25, topics  # the enumeration itself must not come back empty
    return topics - {get_topic(e) for e in domain.sequence.RETIRED_EVENTS}


def exercise_everything(backend, client) -> dict[str, str]:
    """Drive every kind of change through the HTTP API and the CLI; return the secrets used."""
    secrets = {"owner_password": "owner-password-1"}
    keys = multi_user_keys(client)
    admin = bearer(keys["admin"])
    secrets.update(admin_key=keys["admin"], manager_key=keys["manager"], default_key=keys["default"])
    uid = keys["default_id"]
    client.post(f"/api/v1/admin/users/{uid}", headers=admin, json={
        "username": "renamed", "role": "manager", "bio": "b", "password": "changed-password-9", "suspended": 1})
    client.post(f"/api/v1/admin/users/{uid}", headers=admin, json={"suspended": 0})
    deputy = client.post("/api/v1/admin/users/new", headers=admin,
                         json={"username": "deputy", "password": "deputy-password", "role": "admin"}).json()["user"]
    secrets["deputy_password"] = "deputy-password"
    assert client.post(f"/api/v1/admin/users/{deputy['id']}", headers=admin, json={"suspended": 1}).json()["success"]
    secrets["changed_password"] = "changed-password-9"
    backend.cli("users", "revoke-sessions", "renamed")
    invite = client.post("/api/v1/admin/invite/new", headers=admin).json()["invite"]
    secrets["invite_code"] = invite["code"]
    client.post(f"/api/invite/{invite['code']}", json={"username": "invitee", "password": "invitee-password"})
    secrets["invitee_password"] = "invitee-password"
    other = client.post("/api/v1/admin/invite/new", headers=admin).json()["invite"]
    client.delete(f"/api/v1/admin/invite/{other['id']}", headers=admin)
    client.post("/api/v1/admin/preferences", headers=admin, json={"support_email": "s@example.com"})
    token = client.get(f"/api/v1/users/{uid}/issue-auth-token", headers=admin).json()["token"]
    secrets["sso_token"] = token
    session = client.get(f"/api/request-token/sso/simple?token={token}").json()["token"]
    secrets["session_jwt"] = session
    brief = owner_key(client, name="brief", expires_in=timedelta(seconds=1))
    secrets["brief_key"] = brief
    client.app.state.clock.advance(seconds=1.1)
    assert client.get("/api/v1/auth", headers=bearer(brief)).status_code == 403  # records ApiKey.Expired
    cli_key = backend.cli("api-keys", "create", "--name", "cli").stdout.strip()
    secrets["cli_key"] = cli_key
    key_id = next(k["id"] for k in client.get("/api/admin/api-keys", headers=admin).json()["apiKeys"]
                  if k["name"] == "cli")
    client.delete(f"/api/admin/api-key/{key_id}", headers=admin)
    assert client.delete(f"/api/v1/admin/users/{uid}", headers=admin).json()["success"]
    erased = client.post(f"/api/v1/admin/users/{uid}/erase", headers=admin, json={"reason": "asked to be forgotten"})
    assert erased.json()["success"], erased.text
    exercise_content(client, admin, secrets)
    exercise_webhooks(client, admin, secrets)
    created = backend.cli("users", "create", "clio", "--role", "default", input="clio-password\n")
    assert created.stdout == ""  # the password came from stdin: nothing to print
    secrets["clio_password"] = "clio-password"
    return secrets


def exercise_content(client, admin, secrets) -> None:
    """Workspaces, documents, folders, embeds and provider settings."""
    secrets["provider_key"] = "sk-provider-secret-0123456789"
    env = client.post("/api/v1/system/update-env", headers=admin,
                      json={"LLMProvider": "generic-openai", "GenericOpenAiKey": secrets["provider_key"]})
    assert env.json()["newValues"]["GenericOpenAiKey"] == "**********"
    assert client.post("/api/v1/workspace/new", headers=admin, json={"name": "Alpha"}).status_code == 200
    assert client.post("/api/v1/workspace/alpha/update", headers=admin, json={"topN": 5}).status_code == 200
    client.post("/api/v1/admin/workspaces/alpha/manage-users", headers=admin, json={"userIds": [1]})
    doc = client.post("/api/v1/document/raw-text", headers=admin, json={
        "textContent": "Ledgers keep every change.", "metadata": {"title": "ledger"},
        "addToWorkspaces": "alpha"}).json()["documents"][0]
    assert client.post("/api/v1/workspace/alpha/update-pin", headers=admin,
                       json={"docPath": doc["location"], "pinStatus": True}).status_code == 200
    assert client.post("/api/v1/workspace/alpha/update-embeddings", headers=admin,
                       json={"deletes": [doc["location"]]}).status_code == 200
    assert client.post("/api/v1/document/create-folder", headers=admin, json={"name": "archive"}).json()["success"]
    moved = client.post("/api/v1/document/move-files", headers=admin, json={
        "files": [{"from": doc["location"], "to": "archive/" + doc["name"]}]})
    assert moved.json() == {"success": True, "message": None}
    assert client.request("DELETE", "/api/v1/document/remove-folder", headers=admin,
                          json={"name": "archive"}).json()["success"]
    assert client.post("/api/v1/document/create-folder", headers=admin, json={"name": "archive"}).json()["success"]
    thread = client.post("/api/v1/workspace/alpha/thread/new", headers=admin, json={"name": "t"}).json()["thread"]
    client.post(f"/api/v1/workspace/alpha/thread/{thread['slug']}/update", headers=admin, json={"name": "t2"})
    assert client.post(f"/api/v1/workspace/alpha/thread/{thread['slug']}/chat", headers=admin,
                       json={"message": "hello"}).status_code == 200
    assert client.post("/api/v1/workspace/alpha/chat", headers=admin, json={"reset": True}).status_code == 200
    client.delete(f"/api/v1/workspace/alpha/thread/{thread['slug']}", headers=admin)
    embed = client.post("/api/v1/embed/new", headers=admin, json={"workspace_slug": "alpha",
                                                                  "max_chats_per_session": 5}).json()["embed"]
    assert client.post(f"/api/embed/{embed['uuid']}/stream-chat",  # reserves one of the session's chats
                       json={"sessionId": "visitor", "message": "hello"}).status_code == 200
    assert client.post(f"/api/v1/embed/{embed['uuid']}", headers=admin, json={"enabled": False}).json()["success"]
    assert client.delete(f"/api/v1/embed/{embed['uuid']}", headers=admin).json()["success"]
    assert client.delete("/api/v1/workspace/alpha", headers=admin).status_code == 200


# webhooks that may call a receiver on loopback, park at the first failure, and retry at once
WEBHOOKS = {"link_allowlist": frozenset({"127.0.0.1"}), "webhook_max_attempts": 1, "webhook_poll_seconds": 0.05,
            "webhook_backoff_base_seconds": 0.05, "webhook_backoff_max_seconds": 0.05}


def exercise_webhooks(client, admin, secrets) -> None:
    """Add a webhook whose receiver always fails, see it parked, replay it, remove it."""
    with WebhookReceiver(failing=True) as receiver:
        added = client.post("/api/v1/admin/webhooks", headers=admin, json={"url": receiver.url, "types": ["ApiKey"]})
        hook, secrets["webhook_secret"] = added.json()["webhook"], added.json()["secret"]
        assert client.post("/api/admin/generate-api-key", headers=admin, json={"name": "hooked"}).status_code == 200
        wait_until(lambda: [w for w in client.get("/api/v1/admin/webhooks", headers=admin).json()["webhooks"]
                            if (w["delivery"] or {}).get("parked")], what="parked")
        replayed = client.post("/api/v1/admin/webhooks/replay-parked", headers=admin, json={"id": hook["id"]})
        assert str(hook["id"]) in replayed.json()["replayed"]
        assert client.delete(f"/api/v1/admin/webhooks/{hook['id']}", headers=admin).json()["success"]


def test_every_event_type_records_its_actor_and_no_secret_is_stored_or_logged(backend, caplog, llm_settings):
    caplog.set_level(logging.DEBUG)
    clock = FakeClock(datetime.now(UTC))  # keys expire when the test moves it, without sleeping
    with client_for(backend, auth_token="owner-password-1", simple_sso_enabled=True, **llm_settings,
                    **WEBHOOKS, clock=clock) as client:
        secrets = exercise_everything(backend, client)
        secrets["llm_api_key"] = llm_settings["llm_api_key"]
        key_ids = {k["id"]: k for k in client.get("/api/admin/api-keys?includeRevoked=true",
                                                  headers=bearer(secrets["admin_key"])).json()["apiKeys"]}
    events = backend.raw_events()
    seen = {e["topic"] for e in events}
    assert all_event_topics() - seen == set(), "some event types were never exercised"
    user_ids = {e["state"]["user_id"] for e in events if e["topic"].endswith("User.Registered")}
    for event in events:
        state = event["state"]
        assert isinstance(state["actor_user_id"], int) and state["actor_user_id"] in user_ids, event
        assert state["actor_api_key_id"] is None or state["actor_api_key_id"] in key_ids, event
        assert state["correlation_id"], event
    # a change made over HTTP with a key records that key; one made by the CLI records none
    by_topic = {}
    for e in events:
        by_topic.setdefault(e["topic"].rsplit(":", 1)[1], []).append(e["state"])
    assert by_topic["Invite.Created"][0]["actor_api_key_id"] is not None
    assert by_topic["User.SessionsRevoked"][0]["actor_api_key_id"] is None
    assert by_topic["User.SessionsRevoked"][0]["correlation_id"].startswith("cli-")
    claimed = by_topic["Invite.Claimed"][0]
    assert claimed["actor_user_id"] == claimed["user_id"]  # the invitee registers themself
    # secrets: not in any database file or table, not in the captured logs
    stored = backend.all_stored_bytes()
    # our server's log lines (the test client's own httpx lines show the URLs it requested)
    logs = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("httpx"))
    assert len(logs) > 0
    for store in ("jwt-secret", "secrets.json"):  # the secret stores are readable by the owner only
        assert (backend.data_dir / store).stat().st_mode & 0o077 == 0, store
    for name, secret in secrets.items():
        assert secret.encode() not in stored, f"{name} found in the store"
        assert secret not in logs, f"{name} found in the logs"

"""The inputs that once answered 500 (or stored an event some read model could not apply)
answer a clear 4xx JSON error and leave the event store exactly as it was: same count of
events, same bytes. Both backends."""

from __future__ import annotations

import hashlib
import json

import pytest

from tests.support.app import bearer, multi_user_keys

HUGE = 2**63  # one past a signed 64-bit column


def _store_digest(backend) -> tuple[int, str]:
    events = backend.raw_events()
    return len(events), hashlib.sha256(repr(events).encode()).hexdigest()


def _nested(depth: int) -> bytes:
    return b'{"name":' + b"[" * depth + b"]" * depth + b"}"


CASES = [
    # (method, path template, body (json value) or raw bytes, key role)
    ("POST", "/api/v1/admin/users/{default_id}", {"dailyMessageLimit": HUGE}, "admin"),
    ("POST", "/api/v1/admin/users/{default_id}", {"dailyMessageLimit": -HUGE - 1}, "admin"),
    ("POST", "/api/v1/admin/users/new", {"username": "nul\u0000user", "password": "password-1"}, "admin"),
    ("POST", "/api/v1/workspace/new", {"name": "has a \u0000 NUL"}, "admin"),
    ("POST", "/api/v1/workspace/new", b'{"name": "\xff\xfe not utf-8"}', "admin"),
    ("POST", "/api/v1/workspace/new", _nested(1000), "admin"),
    ("POST", "/api/v1/admin/workspaces/{default_id}/update-users", {"userIds": [HUGE]}, "admin"),
    ("POST", "/api/v1/document/raw-text", {"textContent": "text", "metadata": {"title": "a \u0000 title"}}, "admin"),
]


@pytest.mark.parametrize("method, path, body, role", CASES, ids=[f"{m} {p} #{i}" for i, (m, p, _, _) in enumerate(CASES)])
def test_poison_input_answers_4xx_and_stores_nothing(client, backend, method, path, body, role):
    keys = multi_user_keys(client)
    before = _store_digest(backend)
    content = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    response = client.request(method, path.format(**keys), content=content,
                              headers={**bearer(keys[role]), "Content-Type": "application/json"})
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json"), response.headers
    assert response.json(), response.text
    assert _store_digest(backend) == before, "a refused request stored something"
    assert client.get("/api/v1/admin/users", headers=bearer(keys["admin"])).status_code == 200


def test_text_holding_nul_in_a_document_body_is_stored_without_it(client, backend):
    """A document's text may hold NUL bytes (binary junk in a file); they are dropped from the
    text, never stored where a PostgreSQL read model would refuse them."""
    keys = multi_user_keys(client)
    response = client.post("/api/v1/document/raw-text", headers=bearer(keys["admin"]),
                           json={"textContent": "before\u0000after", "metadata": {"title": "nul body"}})
    assert response.status_code == 200, response.text
    doc = response.json()["documents"][0]
    assert "\u0000" not in doc["pageContent"] and "before" in doc["pageContent"]
    ws = client.post("/api/v1/workspace/new", headers=bearer(keys["admin"]), json={"name": "nul"}).json()["workspace"]
    embedded = client.post(f"/api/v1/workspace/{ws['slug']}/update-embeddings", headers=bearer(keys["admin"]),
                           json={"adds": [doc["location"]]})
    assert embedded.status_code == 200, embedded.text
    assert client.get("/api/health/ready").status_code == 200


def test_huge_numbers_in_a_query_are_no_500(client):
    keys = multi_user_keys(client)
    for path in ("/api/v1/admin/users?offset=" + str(HUGE), "/api/v1/workspaces?offset=" + str(HUGE)):
        response = client.get(path, headers=bearer(keys["admin"]))
        assert response.status_code < 500, (path, response.status_code, response.text)


def test_plain_options_answers_2xx_on_every_guarded_path(client):
    paths = client.get("/api/docs/openapi.json").json()["paths"]
    for path in paths:
        concrete = path.replace("{", "").replace("}", "")
        response = client.options(concrete)
        assert 200 <= response.status_code < 300, (path, response.status_code, response.text)


def test_a_chat_holding_nul_is_refused_before_the_model_runs(client, backend):
    keys = multi_user_keys(client)
    admin = bearer(keys["admin"])
    client.post("/api/v1/workspace/new", headers=admin, json={"name": "nul chat"})
    before = _store_digest(backend)
    response = client.post("/api/v1/workspace/nul-chat/chat", headers=admin,
                           json={"message": "hello \u0000 there", "mode": "chat"})
    assert response.status_code == 400 and "NUL" in response.text, response.text
    assert _store_digest(backend) == before

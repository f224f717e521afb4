"""API key management at upstream's internal paths, in single-user and multi-user mode."""

from __future__ import annotations

import re

from tests.support.app import bearer, owner_key

# Upstream's format, the only one its official CLI's `any setup` accepts: 31 characters.
KEY_FORMAT = re.compile(r"sk-[A-Za-z0-9_-]{28}")

UPSTREAM_KEY_FIELDS = {"id", "name", "secret", "createdBy", "createdAt", "lastUpdatedAt"}


def test_generated_key_is_shown_once_and_listed_masked_right_after(client):
    admin = owner_key(client)
    response = client.post("/api/system/generate-api-key", json={"name": "ci"}, headers=bearer(admin))
    assert response.status_code == 200
    body = response.json()
    assert body["error"] is None
    new = body["apiKey"]
    assert UPSTREAM_KEY_FIELDS <= set(new)
    secret = new["secret"]
    assert KEY_FORMAT.fullmatch(secret) and len(secret) == 31  # 168 random bits, url-safe base64
    assert new["createdBy"] == 1 and new["scopes"] == ["read", "write", "chat", "admin"]
    # read-after-write: the listing in the very next request has it, masked, with its owner
    listed = {k["id"]: k for k in client.get("/api/system/api-keys", headers=bearer(admin)).json()["apiKeys"]}
    row = listed[new["id"]]
    assert UPSTREAM_KEY_FIELDS <= set(row)
    assert secret not in row["secret"] and row["secret"].startswith(row["prefix"]) and secret.startswith(row["prefix"])
    assert row["createdBy"] == {"id": 1, "username": "admin", "role": "admin"}
    assert client.get("/api/v1/auth", headers=bearer(secret)).status_code == 200


def test_generate_without_body_and_with_options(client):
    admin = owner_key(client)
    assert client.post("/api/system/generate-api-key", headers=bearer(admin)).json()["apiKey"]["name"] is None
    body = {"name": "limited", "scopes": ["read"], "expiresIn": "30d", "rateLimit": 100}
    key = client.post("/api/system/generate-api-key", json=body, headers=bearer(admin)).json()["apiKey"]
    assert key["scopes"] == ["read"] and key["rateLimit"] == 100 and key["expiresAt"] > key["createdAt"]


def test_delete_revokes_but_keeps_history(client, backend):
    admin = owner_key(client)
    new = client.post("/api/system/generate-api-key", json={"name": "gone"}, headers=bearer(admin)).json()["apiKey"]
    response = client.delete(f"/api/system/api-key/{new['id']}", headers=bearer(admin))
    assert response.status_code == 200 and response.content == b""
    listed = client.get("/api/system/api-keys", headers=bearer(admin)).json()["apiKeys"]
    assert new["id"] not in [k["id"] for k in listed]
    history = client.get("/api/system/api-keys?includeRevoked=true", headers=bearer(admin)).json()["apiKeys"]
    revoked = next(k for k in history if k["id"] == new["id"])
    assert revoked["revokedAt"] and revoked["active"] is False
    topics = [e["topic"].rsplit(":", 1)[1] for e in backend.raw_events()]
    assert topics.count("ApiKey.Revoked") == 1 and "ApiKey.Issued" in topics


def test_bad_and_unknown_key_ids(client):
    admin = owner_key(client)
    for bad in ("abc", "0", "-1", "1.5", "9" * 30):
        response = client.delete(f"/api/system/api-key/{bad}", headers=bearer(admin))
        assert response.status_code == 400, bad
        error = response.json()["error"]  # the path's rule (Litestar), or the id's (0 is no id)
        assert error == "Invalid API key id" or "key_id: Expected `str` matching regex" in error, error
    response = client.delete("/api/system/api-key/999", headers=bearer(admin))
    assert response.status_code == 404 and response.json() == {"error": "API key not found"}


def test_key_scopes_limit_what_a_key_may_do(client):
    admin = owner_key(client)
    reader = client.post("/api/system/generate-api-key", json={"scopes": ["read", "chat"]},
                         headers=bearer(admin)).json()["apiKey"]["secret"]
    assert client.get("/api/v1/auth", headers=bearer(reader)).status_code == 200
    response = client.get("/api/system/api-keys", headers=bearer(reader))
    assert response.status_code == 403 and "admin" in response.json()["error"]
    assert client.post("/api/system/generate-api-key", headers=bearer(reader)).status_code == 403


def test_invalid_key_options_are_refused_and_nothing_is_stored(client, backend):
    admin = owner_key(client)
    before = len(backend.raw_events())
    for body in ({"scopes": ["root"]}, {"scopes": []}, {"expiresIn": "forever"}, {"expiresIn": "0d"},
                 {"expiresIn": "999999w"}, {"expiresIn": "36526d"},
                 {"rateLimit": 0}, {"name": "x" * 201}, {"name": 5}, {"userId": 999}):
        response = client.post("/api/system/generate-api-key", json=body, headers=bearer(admin))
        assert 400 <= response.status_code < 500, body
        assert isinstance(response.json()["error"], str)
    assert len(backend.raw_events()) == before


def test_single_user_key_routes_are_closed_in_multi_user_mode_and_admin_routes_open(client):
    admin = owner_key(client)
    assert client.get("/api/admin/api-keys", headers=bearer(admin)).status_code == 401
    assert client.post("/api/system/enable-multi-user", json={"username": "boss", "password": "password-1"},
                       headers=bearer(admin)).json() == {"success": True, "error": None}
    assert client.get("/api/system/api-keys", headers=bearer(admin)).status_code == 401
    new = client.post("/api/admin/generate-api-key", json={"name": "mum"}, headers=bearer(admin)).json()["apiKey"]
    listed = client.get("/api/admin/api-keys", headers=bearer(admin)).json()["apiKeys"]
    assert {"id": 1, "username": "boss", "role": "admin"} in [k["createdBy"] for k in listed]
    assert client.delete(f"/api/admin/delete-api-key/{new['id']}", headers=bearer(admin)).status_code == 200
    other = client.post("/api/admin/generate-api-key", headers=bearer(admin)).json()["apiKey"]
    assert client.delete(f"/api/admin/api-key/{other['id']}", headers=bearer(admin)).status_code == 200
    assert client.get("/api/v1/auth", headers=bearer(other["secret"])).status_code == 403


def test_admin_may_issue_a_key_to_another_user(client):
    admin = owner_key(client)
    client.post("/api/system/enable-multi-user", json={"username": "boss", "password": "password-1"},
                headers=bearer(admin))
    user = client.post("/api/v1/admin/users/new", json={"username": "carol", "password": "password-2"},
                       headers=bearer(admin)).json()["user"]
    key = client.post("/api/admin/generate-api-key", json={"userId": user["id"]}, headers=bearer(admin)).json()
    assert key["apiKey"]["createdBy"] == user["id"]
    listed = client.get("/api/admin/api-keys", headers=bearer(admin)).json()["apiKeys"]
    assert {"id": user["id"], "username": "carol", "role": "default"} in [k["createdBy"] for k in listed]


def test_keys_issued_in_the_older_longer_format_keep_working(client):
    """Keys issued before the 31-character format (`sk-` + 32 characters) still authenticate."""
    from application.apikeys import hash_secret, take_id
    from application.users import principal_for
    from domain.apikeys import ApiKey

    ctx = client.app.state.runtime.ctx
    owner = ctx.accounts.user(ctx.accounts.owner_id())
    assert owner is not None
    actor = principal_for(ctx, owner).actor("legacy-key")
    old = "sk-" + "Lg" * 16
    key_id = take_id(ctx, "api_keys", actor)
    ctx.save(ApiKey.issue(actor, key_id, 1, hash_secret(old), old[:11], name="legacy"), project=[ctx.api_keys])
    assert client.get("/api/v1/auth", headers=bearer(old)).json() == {"authenticated": True}
    listed = client.get("/api/system/api-keys", headers=bearer(old)).json()["apiKeys"]
    assert [k["prefix"] for k in listed] == [old[:11]] and old not in str(listed)

"""Bad input gets a clear 4xx JSON error, never a 500, and stores nothing."""

from __future__ import annotations

from tests.support.app import bearer, client_for, multi_user_keys, owner_key


def _assert_json_4xx(response, status=None):
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    if status:
        assert response.status_code == status, response.text
    assert isinstance(response.json()["error"], str) and response.json()["error"]


def test_malformed_json_and_wrong_types(client, backend):
    keys = multi_user_keys(client)
    admin = bearer(keys["admin"])
    before = len(backend.raw_events())
    headers = {**admin, "Content-Type": "application/json"}
    _assert_json_4xx(client.post("/api/v1/admin/users/new", content=b"{not json", headers=headers), 400)
    _assert_json_4xx(client.post("/api/v1/admin/users/new", content=b"[1,2]", headers=headers), 400)
    _assert_json_4xx(client.post("/api/v1/admin/users/new", json={"username": 5, "password": "x"}, headers=admin), 400)
    _assert_json_4xx(client.post("/api/v1/admin/users/new", json={"username": "abc"}, headers=admin), 400)
    _assert_json_4xx(client.post("/api/system/generate-api-key", content=b"\xff\xfe", headers=headers), 400)
    _assert_json_4xx(client.post("/api/v1/admin/invite/new", json={"workspaceIds": ["a"]}, headers=admin), 400)
    _assert_json_4xx(client.post("/api/v1/admin/invite/new", json={"workspaceIds": [-1]}, headers=admin), 400)
    _assert_json_4xx(client.post("/api/v1/admin/users/2", json={"suspended": "yes"}, headers=admin), 400)
    _assert_json_4xx(client.post("/api/request-token", json={"password": ["x"]}), 400)
    _assert_json_4xx(client.post("/api/v1/admin/preferences", content=b"null", headers=headers), 400)
    assert len(backend.raw_events()) == before


def test_unknown_routes_and_methods_answer_json(client):
    key = owner_key(client)
    _assert_json_4xx(client.get("/api/v1/nope", headers=bearer(key)), 404)
    _assert_json_4xx(client.put("/api/v1/auth", headers=bearer(key)), 405)


def test_oversized_bodies_are_refused(backend):
    with client_for(backend, max_body_bytes=2048) as client:
        key = owner_key(client)
        before = len(backend.raw_events())
        response = client.post("/api/system/generate-api-key", content=b'{"name": "' + b"x" * 5000 + b'"}',
                               headers={**bearer(key), "Content-Type": "application/json"})
        _assert_json_4xx(response, 413)
        assert len(backend.raw_events()) == before


def test_unknown_user_ids(client):
    keys = multi_user_keys(client)
    admin = bearer(keys["admin"])
    response = client.post("/api/v1/admin/users/999", json={"bio": "x"}, headers=admin)
    assert response.status_code == 404 and response.json() == {"success": False, "error": "User not found"}
    response = client.post("/api/v1/admin/users/abc", json={"bio": "x"}, headers=admin)
    assert response.status_code == 400 and response.json()["success"] is False
    assert "user_id: Expected `str` matching regex" in response.json()["error"]

"""Sign-in with passwords: upstream's success and failure shapes, revocable JWTs, rate limits."""

from __future__ import annotations

from tests.support.app import bearer, client_for, multi_user_keys, owner_key


def test_single_user_login_uses_the_owner_password(backend):
    with client_for(backend, auth_token="owner-secret-1") as client:
        bad = client.post("/api/request-token", json={"password": "wrong-password"})
        assert bad.status_code == 401
        assert bad.json() == {"valid": False, "token": None, "message": "[003] Invalid password provided", "user": None}
        good = client.post("/api/request-token", json={"password": "owner-secret-1"})
        assert good.status_code == 200 and good.json()["valid"] is True and good.json()["message"] is None
        token = good.json()["token"]
        # the session works on the internal routes, not on the developer API (keys only, as upstream)
        assert client.post("/api/system/generate-api-key", headers=bearer(token)).status_code == 200
        assert client.get("/api/v1/auth", headers=bearer(token)).status_code == 403


def test_internal_routes_need_a_credential(client):
    response = client.get("/api/system/api-keys")
    assert response.status_code == 401 and response.json() == {"error": "No auth token found."}
    response = client.get("/api/system/api-keys", headers=bearer("not-a-token"))
    assert response.status_code == 401 and response.json() == {"error": "No valid auth token found."}


def test_multi_user_login_shapes(client):
    keys = multi_user_keys(client)
    ok = client.post("/api/request-token", json={"username": "manager-user", "password": "manager-password"})
    body = ok.json()
    assert ok.status_code == 200 and body["valid"] is True and body["message"] is None
    assert body["user"]["username"] == "manager-user" and "password" not in body["user"]
    for creds in ({"username": "manager-user", "password": "wrong-password"},
                  {"username": "nobody", "password": "manager-password"}):
        failed = client.post("/api/request-token", json=creds)
        # one message for both: upstream's [001]/[002] split lets callers probe usernames
        assert failed.status_code == 200
        assert failed.json() == {"valid": False, "token": None, "message": "[001] Invalid login credentials.",
                                 "user": None}
    client.post(f"/api/v1/admin/users/{keys['manager_id']}", json={"suspended": 1}, headers=bearer(keys["admin"]))
    suspended = client.post("/api/request-token", json={"username": "manager-user", "password": "manager-password"})
    assert suspended.json()["message"] == "[004] Account suspended by admin."


def test_sessions_are_revoked_by_password_change_and_suspension(client):
    keys = multi_user_keys(client)
    login = lambda pw: client.post("/api/request-token", json={"username": "manager-user", "password": pw}).json()  # noqa: E731
    token = login("manager-password")["token"]
    assert client.get("/api/system/check-token", headers=bearer(token)).status_code == 200
    client.post(f"/api/v1/admin/users/{keys['manager_id']}", json={"password": "new-password-1"},
                headers=bearer(keys["admin"]))
    assert client.get("/api/system/check-token", headers=bearer(token)).status_code == 401
    token = login("new-password-1")["token"]
    client.post(f"/api/v1/admin/users/{keys['manager_id']}", json={"suspended": 1}, headers=bearer(keys["admin"]))
    client.post(f"/api/v1/admin/users/{keys['manager_id']}", json={"suspended": 0}, headers=bearer(keys["admin"]))
    assert client.get("/api/system/check-token", headers=bearer(token)).status_code == 401


def test_revoke_sessions_from_the_cli(backend):
    with client_for(backend) as client:
        multi_user_keys(client)
        token = client.post("/api/request-token", json={"username": "boss", "password": "boss-password"}).json()["token"]
        assert client.get("/api/system/check-token", headers=bearer(token)).status_code == 200
        backend.cli("users", "revoke-sessions", "boss")
        assert client.get("/api/system/check-token", headers=bearer(token)).status_code == 401


def test_login_attempts_are_rate_limited_per_username_and_address(backend):
    with client_for(backend, login_max_attempts=3) as client:
        multi_user_keys(client)
        codes = [client.post("/api/request-token", json={"username": "x", "password": "wrong-pass"}).status_code
                 for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        limited = client.post("/api/request-token", json={"username": "x", "password": "wrong-pass"})
        assert int(limited.headers["retry-after"]) >= 1 and limited.json()["valid"] is False
        # another username from the same address still gets its own attempts
        assert client.post("/api/request-token", json={"username": "y", "password": "wrong-pass"}).status_code == 200


def test_enable_multi_user_twice_and_with_bad_input(client):
    key = owner_key(client)
    bad = client.post("/api/system/enable-multi-user", json={"username": "Bad Name", "password": "password-1"},
                      headers=bearer(key))
    assert bad.status_code == 400 and bad.json()["success"] is False
    assert client.get("/api/system/multi-user-mode").json() == {"multiUserMode": False}
    ok = client.post("/api/system/enable-multi-user", json={"username": "boss", "password": "password-1"},
                     headers=bearer(key))
    assert ok.json() == {"success": True, "error": None}
    again = client.post("/api/system/enable-multi-user", json={"username": "boss2", "password": "password-1"},
                        headers=bearer(key))
    assert again.status_code == 200 and again.json() == {"success": False, "error": "Multi-user mode is already enabled."}
    assert client.get("/api/system/multi-user-mode").json() == {"multiUserMode": True}

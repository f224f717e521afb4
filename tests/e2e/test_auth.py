"""Developer API authentication: keys as Bearer tokens, upstream's 403 body, request ids."""

from __future__ import annotations

from tests.support.app import bearer, owner_key

NO_KEY = {"error": "No valid api key found."}


def test_ping_answers_without_auth(client):
    response = client.get("/api/ping")
    assert response.status_code == 200
    assert response.json() == {"online": True}


def test_valid_key_is_authenticated_with_any_scheme_word(client):
    key = owner_key(client)
    assert client.get("/api/v1/auth", headers=bearer(key)).json() == {"authenticated": True}
    assert client.get("/api/v1/auth", headers={"Authorization": f"Foo {key}"}).status_code == 200


def test_missing_unknown_and_malformed_keys_are_refused_with_upstream_body(client):
    for headers in ({}, bearer("sk-not-a-real-key"), {"Authorization": "Bearer"}, {"Authorization": "garbage"},
                    bearer("not-even-prefixed")):
        response = client.get("/api/v1/auth", headers=headers)
        assert response.status_code == 403, headers
        assert response.json() == NO_KEY


def test_session_tokens_are_not_api_keys(client):
    response = client.get("/api/v1/auth", headers=bearer("eyJhbGciOiJIUzI1NiJ9.e30.x"))
    assert response.status_code == 403


def test_revoked_key_is_refused_at_once(client):
    admin = owner_key(client)
    victim = owner_key(client, name="victim")
    assert client.get("/api/v1/auth", headers=bearer(victim)).status_code == 200  # now cached
    key_id = next(k["id"] for k in client.get("/api/system/api-keys", headers=bearer(admin)).json()["apiKeys"]
                  if k["name"] == "victim")
    assert client.delete(f"/api/system/api-key/{key_id}", headers=bearer(admin)).status_code == 200
    assert client.get("/api/v1/auth", headers=bearer(victim)).status_code == 403


def test_expired_key_is_refused_and_its_expiry_recorded(backend):
    from datetime import UTC, datetime, timedelta

    from tests.support.app import client_for
    from tests.support.clock import FakeClock

    clock = FakeClock(datetime.now(UTC))
    with client_for(backend, clock=clock) as client:
        key = owner_key(client, name="short")
        # An expiry in the past cannot be requested; issue one that lapses in a second.
        short = owner_key(client, name="brief", expires_in=timedelta(seconds=1))
        assert client.get("/api/v1/auth", headers=bearer(short)).status_code == 200
        clock.advance(seconds=0.9)
        assert client.get("/api/v1/auth", headers=bearer(short)).status_code == 200
        clock.advance(seconds=0.2)
        assert client.get("/api/v1/auth", headers=bearer(short)).json() == NO_KEY
        listing = client.get("/api/system/api-keys?includeRevoked=true", headers=bearer(key)).json()["apiKeys"]
    expired = [e for e in backend.raw_events() if e["topic"].endswith("ApiKey.Expired")]
    assert len(expired) == 1
    assert [k["active"] for k in listing if k["name"] == "brief"] == [False]


def test_every_response_carries_a_request_id_that_events_record(client, backend):
    key = owner_key(client)
    response = client.post("/api/system/generate-api-key", json={"name": "traced"}, headers=bearer(key))
    request_id = response.headers["x-request-id"]
    assert len(request_id) >= 8
    issued = [e for e in backend.raw_events() if e["topic"].endswith("ApiKey.Issued")
              and e["state"]["name"] == "traced"]
    assert issued[0]["state"]["correlation_id"] == request_id
    assert client.get("/api/ping").headers["x-request-id"] != request_id
    refused = client.get("/api/v1/auth")  # refused in middleware: still stamped
    assert refused.status_code == 403 and len(refused.headers["x-request-id"]) >= 8


def test_callers_request_id_is_kept_when_safe(client):
    assert client.get("/api/ping", headers={"X-Request-Id": "trace-12345678"}).headers["x-request-id"] == "trace-12345678"
    assert client.get("/api/ping", headers={"X-Request-Id": "bad id;drop"}).headers["x-request-id"] != "bad id;drop"


def test_requests_no_route_matches_and_cross_origin_requests_carry_ids(client):
    missing = client.get("/api/no-such-route")
    assert missing.status_code == 404 and len(missing.headers["x-request-id"]) == 32
    ids = {client.get("/api/ping").headers["x-request-id"] for _ in range(300)}  # past one pool of ids
    assert len(ids) == 300 and all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
    cross = client.get("/api/ping", headers={"Origin": "https://app.example"})
    assert cross.status_code == 200 and cross.headers["access-control-allow-origin"] == "*"
    assert "x-request-id" in cross.headers["access-control-expose-headers"].lower()
    assert len(cross.headers["x-request-id"]) == 32
    assert "access-control-allow-origin" not in client.get("/api/ping").headers
    preflight = client.options("/api/v1/auth", headers={
        "Origin": "https://app.example", "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization"})
    assert preflight.status_code == 204 and preflight.headers["access-control-allow-origin"] == "*"
    assert "GET" in preflight.headers["access-control-allow-methods"]
    assert len(preflight.headers["x-request-id"]) == 32


def test_access_line_names_request_user_and_key_but_no_secret(client, caplog):
    key = owner_key(client)
    with caplog.at_level("INFO", logger="ledgerllm.access"):
        response = client.get("/api/v1/auth", headers=bearer(key))
    line = next(r.getMessage() for r in caplog.records if r.name == "ledgerllm.access"
                and response.headers["x-request-id"] in r.getMessage())
    assert " GET /api/v1/auth 200 " in line and "user=" in line and "key=" in line and "key=-" not in line
    assert key not in caplog.text

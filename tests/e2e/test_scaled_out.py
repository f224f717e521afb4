"""Two server processes' worth of app on one PostgreSQL and one Redis: a revocation or a
rate-limit count seen by one holds on the other at once."""

from __future__ import annotations

from tests.support.app import bearer, client_for, owner_key


def test_revoked_key_is_refused_at_once_when_cached_in_redis(pg_backend):
    import redis

    with client_for(pg_backend) as first, client_for(pg_backend) as second:
        admin = owner_key(first)
        victim = first.post("/api/system/generate-api-key", json={"name": "victim"},
                            headers=bearer(admin)).json()["apiKey"]
        # both processes have the principal cached in Redis now
        assert first.get("/api/v1/auth", headers=bearer(victim["secret"])).status_code == 200
        assert second.get("/api/v1/auth", headers=bearer(victim["secret"])).status_code == 200
        cached = redis.Redis.from_url(pg_backend.redis_url).keys("ledgerllm:principal:*")
        assert len(cached) >= 1
        assert second.delete(f"/api/system/api-key/{victim['id']}", headers=bearer(admin)).status_code == 200
        assert first.get("/api/v1/auth", headers=bearer(victim["secret"])).status_code == 403
        assert second.get("/api/v1/auth", headers=bearer(victim["secret"])).status_code == 403


def test_cli_revocation_reaches_a_running_server_at_once(backend):
    """Redis: the CLI drops the cached principal itself. Embedded: the server's follower
    sees the Revoked event; `at once` there means within its poll interval (50 ms)."""
    import time

    with client_for(backend) as client:
        secret = backend.cli("api-keys", "create", "--name", "cli-made").stdout.strip()
        assert client.get("/api/v1/auth", headers=bearer(secret)).status_code == 200  # cached
        key_id = next(k["id"] for k in client.get("/api/system/api-keys", headers=bearer(owner_key(client)))
                      .json()["apiKeys"] if k["name"] == "cli-made")
        backend.cli("api-keys", "revoke", str(key_id))
        deadline = time.monotonic() + (0.01 if backend.redis_url else 2.0)
        while client.get("/api/v1/auth", headers=bearer(secret)).status_code == 200:
            assert time.monotonic() < deadline, "revoked key still accepted"
            time.sleep(0.02)


def test_key_rate_limit_holds_across_processes(backend):
    with client_for(backend) as first, client_for(backend) as second:
        admin = owner_key(first)
        limited = first.post("/api/system/generate-api-key", json={"rateLimit": 3},
                             headers=bearer(admin)).json()["apiKey"]["secret"]
        clients = [first, second, first] if backend.redis_url else [first, first, first]
        answers = [c.get("/api/v1/auth", headers=bearer(limited)) for c in clients]
        assert [a.status_code for a in answers] == [200, 200, 200]
        assert [a.headers["ratelimit-remaining"] for a in answers] == ["2", "1", "0"]
        assert all(a.headers["ratelimit-limit"] == "3" for a in answers)
        over = (second if backend.redis_url else first).get("/api/v1/auth", headers=bearer(limited))
        assert over.status_code == 429
        assert int(over.headers["retry-after"]) >= 1 and over.headers["ratelimit-remaining"] == "0"
        assert "Rate limit" in over.json()["error"]
        # keys without a limit are not counted or slowed
        assert "ratelimit-limit" not in first.get("/api/v1/auth", headers=bearer(admin)).headers

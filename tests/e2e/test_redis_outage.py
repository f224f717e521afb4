"""Redis is a cache: with it stopped, a real server keeps authenticating from the read model,
refuses a key revoked meanwhile, reports Redis as degraded, and recovers when it is back
without a restart, never serving the revoked key from a stale cache entry."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator

import pytest
import redis

from harness.servers import RedisServer
from tests.support.app import Backend
from tests.support.process import get, running_server

DEADLINE = 120  # seconds: generous for a loaded machine


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A Redis of this test's own, since the test stops and starts it."""
    with RedisServer.running() as server:
        yield server


def _until(condition, what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def _key(backend: Backend, name: str) -> tuple[str, int]:
    secret = backend.cli("api-keys", "create", "--name", name).stdout.strip().splitlines()[-1]
    rows = [json.loads(line) for line in backend.cli("api-keys", "list", "--json").stdout.splitlines() if line]
    return secret, max(r["id"] for r in rows if r["name"] == name)


def test_keys_keep_working_and_revocations_hold_while_redis_is_down(tmp_path, pg_url, own_redis):
    backend = Backend("postgres", tmp_path / "data", pg_url, own_redis.url)
    good, _ = _key(backend, "good")
    doomed, doomed_id = _key(backend, "doomed")
    with running_server(backend, tmp_path / "server.log", env={"REDIS_TIMEOUT": "0.3"}) as server:
        server.wait_warm()  # ready from here on, but for Redis
        auth = server.url + "/api/v1/auth"
        assert get(auth, good)[0] == 200 and get(auth, doomed)[0] == 200  # both cached in Redis now
        cache = redis.Redis.from_url(own_redis.url)
        cached = {k: cache.get(k) for k in cache.keys("ledgerllm:principal:*")}
        assert len(cached) == 2
        cache.close()

        own_redis.stop()
        assert get(auth, good)[0] == 200, "a valid key works from the read model while Redis is down"
        status, body, _ = get(server.url + "/api/health/ready")
        ready = json.loads(body)
        assert status == 200 and ready["degraded"] and "Redis" in ready["degraded"][0], ready

        revoked = backend.cli("api-keys", "revoke", str(doomed_id), check=False)
        assert revoked.returncode == 0, revoked.stderr  # the event is stored; the cache is told later
        assert "revoked" in revoked.stderr and "Redis" in revoked.stderr, revoked.stderr
        _until(lambda: get(auth, doomed)[0] == 403, "the revoked key to be refused while Redis is down")
        assert get(auth, good)[0] == 200

        # Back on the same port holding its old entries (a network split, not a crash): the
        # server is paused so that the entries are in place before it can reach Redis again.
        server.proc.send_signal(signal.SIGSTOP)
        try:
            own_redis.start()
            cache = redis.Redis.from_url(own_redis.url)
            for k, v in cached.items():
                cache.set(k, v, ex=3600)
            cache.close()
        finally:
            server.proc.send_signal(signal.SIGCONT)
        _until(lambda: json.loads(get(server.url + "/api/health/ready")[1])["degraded"] == [],
               "readiness to see Redis back")
        for _ in range(5):
            assert get(auth, doomed)[0] == 403, "a revoked key never comes back from the cache"
            assert get(auth, good)[0] == 200
        assert "Redis is reachable again" in (tmp_path / "server.log").read_text()


def test_rate_limits_fall_back_to_per_process_counting_while_redis_is_down(tmp_path, pg_url, own_redis):
    backend = Backend("postgres", tmp_path / "data", pg_url, own_redis.url)
    key = backend.cli("api-keys", "create", "--name", "limited", "--rate-limit", "3").stdout.strip().splitlines()[-1]
    with running_server(backend, tmp_path / "server.log", env={"REDIS_TIMEOUT": "0.3"}) as server:
        own_redis.stop()
        statuses = [get(server.url + "/api/v1/auth", key)[0] for _ in range(6)]
        assert statuses[:3] == [200, 200, 200] and 429 in statuses[3:], statuses


@pytest.mark.parametrize("env, name", [({"RATE_LIMIT_FALLBACK": "open"}, "RATE_LIMIT_FALLBACK"),
                                       ({"REDIS_TIMEOUT": "0"}, "REDIS_TIMEOUT")])
def test_bad_redis_settings_are_refused_with_their_name(env, name):
    from infrastructure.settings import SettingsError, load_settings

    with pytest.raises(SettingsError, match=name):
        load_settings(env)

"""Redis principal cache and rate limiter: shared by every process, so a revocation or a
request count seen by one worker holds on all of them.

Redis is only a cache. Every command has a short timeout (`REDIS_TIMEOUT`); when Redis is
unreachable or slow the request goes on without it:
- a principal is looked up in the read model (a cache miss), and nothing is cached;
- dropping revoked keys is remembered and retried: until every pending drop has reached Redis,
  this process trusts no cached principal (a stale entry there could be a revoked key), and
  `flush()` raises so the follower keeps the revoking events unhandled and calls again;
- rate limits are counted in this process, or refused (`RATE_LIMIT_FALLBACK=closed`);
- `problem` names the failure for the readiness check, until a command succeeds again;
- for a second after a failure requests do not try Redis at all (no request waits on a
  timeout twice a second); the follower's `flush()` keeps trying it meanwhile.
A broken pooled connection (Redis restarted) is replaced and the command retried once, so a
restart of Redis costs no failed request once it is back."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

import msgspec
import redis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis.exceptions import RedisError

from application.ports import CachedPrincipal, RateDecision
from domain.errors import Unavailable
from infrastructure.memory_cache import MemoryRateLimiter
from infrastructure.ratelimit import GCRA_LUA

log = logging.getLogger("ledgerllm.redis")

_PREFIX = "ledgerllm:principal:"
_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(CachedPrincipal).decode
T = TypeVar("T")


class CacheUnreachable(RuntimeError):
    """Some dropped keys could not be removed from Redis yet; they are retried."""


class RedisHealth:
    """The last failure to reach Redis, shared by the cache and the limiter of one process."""

    PAUSE = 1.0  # seconds requests leave Redis alone after a failure

    def __init__(self) -> None:
        self.problem: str | None = None
        self._logged_at = 0.0
        self._paused_until = 0.0

    def available(self) -> bool:
        return self.problem is None or time.monotonic() >= self._paused_until

    def ok(self) -> None:
        if self.problem is not None:
            log.warning("Redis is reachable again")
            self.problem = None

    def failed(self, error: Exception) -> None:
        self.problem = f"Redis unreachable: {type(error).__name__}: {error}"
        now = time.monotonic()
        self._paused_until = now + self.PAUSE
        if now - self._logged_at > 10:  # one line per 10 s, not one per request
            self._logged_at = now
            log.warning("%s; going on without it (principals from the read model)", self.problem)


_OPTIONS = {"health_check_interval": 30, "retry_on_error": [redis.ConnectionError]}


def _async_client(url: str, timeout: float) -> aioredis.Redis:
    return aioredis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout,
                                   retry=AsyncRetry(NoBackoff(), 1), **_OPTIONS)


def _sync_client(url: str, timeout: float) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout,
                                retry=Retry(NoBackoff(), 1), **_OPTIONS)


class RedisPrincipalCache:
    def __init__(self, url: str, timeout: float = 0.5, health: RedisHealth | None = None) -> None:
        self._async, self._sync = _async_client(url, timeout), _sync_client(url, timeout)
        self.health = health or RedisHealth()
        self._pending: set[str] = set()  # secret hashes whose drop has not reached Redis yet
        self._lock = threading.Lock()

    @property
    def problem(self) -> str | None:
        return self.health.problem

    async def get(self, secret_hash: str) -> CachedPrincipal | None:
        if self._pending:
            return None  # a cached entry may be a key revoked while Redis was away (see flush)
        raw = await self._call(lambda: self._async.get(_PREFIX + secret_hash))
        return None if raw is None else _decode(raw)

    async def put(self, secret_hash: str, entry: CachedPrincipal, ttl: int) -> None:
        if self._pending:
            return
        await self._call(lambda: self._async.set(_PREFIX + secret_hash, _encode(entry), ex=max(1, ttl)))

    def drop(self, secret_hashes: Iterable[str]) -> None:
        """Forget these keys on every process; what cannot reach Redis now is retried."""
        with self._lock:
            self._pending.update(secret_hashes)
        self._try_flush()

    def flush(self) -> None:
        """Retry the drops that have not reached Redis; raise `CacheUnreachable` while some remain."""
        if self._pending and not self._try_flush():
            raise CacheUnreachable(f"{len(self._pending)} revoked key(s) not yet dropped from Redis ({self.problem})")

    def probe(self) -> str | None:
        """Ping Redis now (for the readiness check); the problem, or None when it answers."""
        try:
            self._sync.ping()
        except RedisError as e:
            self.health.failed(e)
        else:
            self.health.ok()
        return self.health.problem

    def _try_flush(self) -> bool:
        with self._lock:
            keys = [_PREFIX + h for h in self._pending]
            if not keys:
                return True
            try:
                self._sync.delete(*keys)
            except RedisError as e:
                self.health.failed(e)
                return False
            self._pending.clear()
        self.health.ok()
        return True

    async def _call(self, command: Callable[[], Awaitable[T]]) -> T | None:
        if not self.health.available():
            return None
        try:
            result = await command()
        except RedisError as e:
            self.health.failed(e)
            return None
        self.health.ok()
        return result

    async def aclose(self) -> None:
        await self._async.aclose()
        self._sync.close()


class RedisRateLimiter:
    """GCRA in a Lua script: read, decide and write in one atomic step on the server. While
    Redis is unreachable: counted in this process (`fallback="local"`) or refused ("closed")."""

    def __init__(self, url: str, timeout: float = 0.5, fallback: str = "local",
                 health: RedisHealth | None = None) -> None:
        self._redis = _async_client(url, timeout)
        self._script = self._redis.register_script(GCRA_LUA)
        self._fallback = fallback
        self._local = MemoryRateLimiter()
        self.health = health or RedisHealth()

    async def hit(self, key: str, limit: int, window: int) -> RateDecision:
        try:
            if not self.health.available():
                raise redis.ConnectionError(self.health.problem)
            result = await self._script(keys=[f"ledgerllm:rate:{key}"], args=[time.time(), limit, window])
        except RedisError as e:
            if self.health.available():
                self.health.failed(e)
            if self._fallback == "closed":
                raise Unavailable(
                    "Rate limits cannot be checked while Redis is unreachable; try again shortly.") from None
            return await self._local.hit(key, limit, window)
        self.health.ok()
        if int(result[0]) == 0:
            return RateDecision(False, limit, 0, max(1, math.ceil(float(result[1]))))
        remaining = int(float(result[1]) + 1e-9)
        return RateDecision(True, limit, remaining, max(1, math.ceil(float(result[2]))))

    async def aclose(self) -> None:
        await self._redis.aclose()

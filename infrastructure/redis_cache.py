"""Redis principal cache and rate limiter: shared by every process, so a revocation or a
request count seen by one worker holds on all of them."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable

import msgspec
import redis
import redis.asyncio as aioredis

from application.ports import CachedPrincipal, RateDecision
from infrastructure.ratelimit import GCRA_LUA

_PREFIX = "ledgerllm:principal:"
_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(CachedPrincipal).decode


class RedisPrincipalCache:
    def __init__(self, url: str) -> None:
        self._async = aioredis.Redis.from_url(url)
        self._sync = redis.Redis.from_url(url)

    async def get(self, secret_hash: str) -> CachedPrincipal | None:
        raw = await self._async.get(_PREFIX + secret_hash)
        return None if raw is None else _decode(raw)

    async def put(self, secret_hash: str, entry: CachedPrincipal, ttl: int) -> None:
        await self._async.set(_PREFIX + secret_hash, _encode(entry), ex=max(1, ttl))

    def drop(self, secret_hashes: Iterable[str]) -> None:
        keys = [_PREFIX + h for h in secret_hashes]
        if keys:
            self._sync.delete(*keys)

    async def aclose(self) -> None:
        await self._async.aclose()
        self._sync.close()


class RedisRateLimiter:
    """GCRA in a Lua script: read, decide and write in one atomic step on the server."""

    def __init__(self, url: str) -> None:
        self._redis = aioredis.Redis.from_url(url)
        self._script = self._redis.register_script(GCRA_LUA)

    async def hit(self, key: str, limit: int, window: int) -> RateDecision:
        result = await self._script(keys=[f"ledgerllm:rate:{key}"], args=[time.time(), limit, window])
        if int(result[0]) == 0:
            return RateDecision(False, limit, 0, max(1, math.ceil(float(result[1]))))
        remaining = int(float(result[1]) + 1e-9)
        return RateDecision(True, limit, remaining, max(1, math.ceil(float(result[2]))))

    async def aclose(self) -> None:
        await self._redis.aclose()

"""In-process principal cache and rate limiter: the embedded-mode defaults (one server process)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable

from application.ports import CachedPrincipal, RateDecision
from infrastructure.ratelimit import gcra


class MemoryPrincipalCache:
    def __init__(self, max_entries: int = 100_000) -> None:
        self._entries: dict[str, tuple[float, CachedPrincipal]] = {}
        self._max = max_entries
        self._lock = threading.Lock()

    async def get(self, secret_hash: str) -> CachedPrincipal | None:
        hit = self._entries.get(secret_hash)
        if hit is None:
            return None
        if hit[0] < time.monotonic():
            self._entries.pop(secret_hash, None)
            return None
        return hit[1]

    async def put(self, secret_hash: str, entry: CachedPrincipal, ttl: int) -> None:
        with self._lock:
            if len(self._entries) >= self._max:
                self._entries.clear()  # crude but bounded; entries are cheap to rebuild
            self._entries[secret_hash] = (time.monotonic() + ttl, entry)

    def drop(self, secret_hashes: Iterable[str]) -> None:
        with self._lock:
            for h in secret_hashes:
                self._entries.pop(h, None)

    def flush(self) -> None:
        """Nothing to retry: drops here never fail."""


class MemoryRateLimiter:
    """GCRA (see infrastructure/ratelimit.py), counted in this process."""

    def __init__(self) -> None:
        self._tats: dict[str, float] = {}
        self._lock = threading.Lock()

    async def hit(self, key: str, limit: int, window: int) -> RateDecision:
        now = time.time()
        with self._lock:
            if len(self._tats) > 100_000:
                self._tats = {k: t for k, t in self._tats.items() if t > now}
            decision, tat = gcra(self._tats.get(key, now), now, limit, window)
            if decision.allowed:
                self._tats[key] = tat
        return decision

"""In-process principal cache and rate limiter: the embedded-mode defaults (one server process)."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterable

from application.ports import CachedPrincipal, RateDecision


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


class MemoryRateLimiter:
    """Fixed windows per key, counted in this process."""

    def __init__(self) -> None:
        self._windows: dict[str, tuple[int, int]] = {}  # key -> (window number, count)
        self._lock = threading.Lock()

    async def hit(self, key: str, limit: int, window: int) -> RateDecision:
        now = time.time()
        number = int(now // window)
        with self._lock:
            current, count = self._windows.get(key, (number, 0))
            if current != number:
                count = 0
                if len(self._windows) > 100_000:
                    self._windows = {k: v for k, v in self._windows.items() if v[0] == number}
            count += 1
            self._windows[key] = (number, count)
        reset = max(1, math.ceil((number + 1) * window - now))
        return RateDecision(count <= limit, limit, max(0, limit - count), reset)

"""What the use cases need from outside, as Protocols; infrastructure/ provides the adapters."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

import msgspec

from domain.principal import Principal


class CachedPrincipal(msgspec.Struct, frozen=True):
    principal: Principal
    expires_at: float | None  # unix time the key expires, None = never


class PrincipalCache(Protocol):
    """Key-hash -> principal lookups, shared by every process when Redis is configured."""

    async def get(self, secret_hash: str) -> CachedPrincipal | None: ...

    async def put(self, secret_hash: str, entry: CachedPrincipal, ttl: int) -> None: ...

    def drop(self, secret_hashes: Iterable[str]) -> None:
        """Forget these keys at once (called from worker threads after a revocation)."""


class RateDecision(msgspec.Struct, frozen=True):
    allowed: bool
    limit: int
    remaining: int
    reset: int  # seconds until the window resets


class RateLimiter(Protocol):
    async def hit(self, key: str, limit: int, window: int) -> RateDecision: ...


class PasswordHasher(Protocol):
    def hash(self, password: str) -> str: ...

    def verify(self, password_hash: str | None, password: str) -> bool:
        """False for a wrong password or no hash; spends the same time either way."""


class SessionTokens(Protocol):
    """Signed session tokens (JWT) for the internal, AnythingLLM-UI style routes."""

    def issue(self, user_id: int, username: str, token_version: int) -> str: ...

    def read(self, token: str) -> tuple[int, int] | None:
        """(user id, token version) of a valid, unexpired token, else None."""

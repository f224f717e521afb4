"""Who is acting: the authenticated principal and the actor stamp every event carries."""

from __future__ import annotations

from enum import StrEnum

import msgspec


class Role(StrEnum):
    ADMIN = "admin"
    MANAGER = "manager"
    DEFAULT = "default"


class Scope(StrEnum):
    """What an API key may do. Beyond AnythingLLM, whose keys can do everything."""

    READ = "read"
    WRITE = "write"
    CHAT = "chat"
    ADMIN = "admin"


ALL_SCOPES: tuple[str, ...] = tuple(s.value for s in Scope)


class Actor(msgspec.Struct, frozen=True):
    """The stamp on every event: the acting user, the key used (if any), the request."""

    user_id: int
    api_key_id: int | None
    correlation_id: str

    def stamp(self) -> dict[str, object]:
        return {
            "actor_user_id": self.user_id,
            "actor_api_key_id": self.api_key_id,
            "correlation_id": self.correlation_id,
        }


class Principal(msgspec.Struct, frozen=True):
    """An authenticated caller: always a user, plus the API key when one was used."""

    user_id: int
    username: str
    role: Role
    api_key_id: int | None = None
    scopes: tuple[str, ...] = ALL_SCOPES
    rate_limit: int | None = None  # requests per minute for the key, None = unlimited

    def actor(self, correlation_id: str) -> Actor:
        return Actor(self.user_id, self.api_key_id, correlation_id)

    def has_scope(self, scope: str) -> bool:
        """`admin` implies every other scope; JWT sessions (no key) have every scope."""
        return self.api_key_id is None or Scope.ADMIN in self.scopes or scope in self.scopes

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN

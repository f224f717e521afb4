"""The rows read models hand to use cases: frozen Structs, one per kind of record. The view
Protocols in `application.ports` return these; `projections/` builds them from its tables and
`api/presenters` turns them into upstream's JSON shapes."""

from __future__ import annotations

import msgspec


# accounts ------------------------------------------------------------------------------------
class UserRow(msgspec.Struct, frozen=True):
    id: int
    username: str
    role: str
    suspended: bool
    deleted: bool
    token_version: int
    daily_message_limit: int | None
    bio: str | None
    pfp_filename: str | None
    created_at: str
    updated_at: str


class AuthTokenRow(msgspec.Struct, frozen=True):
    """A single-use sign-in token (`/v1/users/{id}/issue-auth-token`), by its hash."""

    user_id: int
    expires_at: str
    used: bool


class UserRef(msgspec.Struct, frozen=True):
    """Who made or claimed an invite: the id, and the name while the user exists."""

    id: int
    username: str | None


class InviteRow(msgspec.Struct, frozen=True):
    """An invite as listed: never the code, only its display prefix."""

    id: int
    display_prefix: str
    status: str  # pending, claimed, disabled
    claimed_by: UserRef | None
    workspace_ids: tuple[int, ...]
    created_by: UserRef | None
    created_at: str
    updated_at: str


# api_keys ------------------------------------------------------------------------------------
class ApiKeyRow(msgspec.Struct, frozen=True):
    """An API key as listed: never the secret, only its display prefix."""

    id: int
    name: str | None
    display_prefix: str
    user_id: int
    scopes: tuple[str, ...]
    expires_at: str | None
    rate_limit: int | None
    created_by: int
    created_at: str
    updated_at: str
    revoked_at: str | None
    expired: bool

    def active_at(self, now: str) -> bool:
        """Neither revoked nor expired at `now` (an ISO time, as `domain.timefmt.iso` makes)."""
        return self.revoked_at is None and not self.expired and not (self.expires_at and self.expires_at <= now)


class KeyLookup(msgspec.Struct, frozen=True):
    """What authentication needs of the key behind a presented secret's hash."""

    id: int
    user_id: int
    scopes: tuple[str, ...]
    expires_at: str | None
    rate_limit: int | None
    revoked: bool


# library -------------------------------------------------------------------------------------


# vectors -------------------------------------------------------------------------------------


# chats ---------------------------------------------------------------------------------------


# audit_log -----------------------------------------------------------------------------------
class AuditRow(msgspec.Struct, frozen=True):
    """One stored event as the audit log shows it: who, with which key, in which request."""

    position: int
    time: str
    actor_user_id: int | None
    actor_api_key_id: int | None
    correlation_id: str | None
    type: str
    aggregate_id: str
    summary: str


class AuditPage(msgspec.Struct, frozen=True):
    events: list[AuditRow]
    total: int
    has_more: bool


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
class ThreadRow(msgspec.Struct, frozen=True):
    id: int
    workspace_id: int
    user_id: int
    name: str
    slug: str
    created_at: str
    updated_at: str


class HistoryRow(msgspec.Struct, frozen=True):
    """One exchange as the history routes show it; `response` is upstream's full response JSON."""

    id: int
    prompt: str
    response: str
    feedback: int | None
    created_at: str


class EmbedChat(msgspec.Struct, frozen=True):
    id: int
    prompt: str
    response: str
    session_id: str
    include: bool
    embed_id: int
    created_at: str


class ChatLogRow(msgspec.Struct, frozen=True):
    """One exchange of the chat logs (admins): every partition key, the reply and the full response."""

    id: int
    workspace_id: int
    user_id: int
    thread_id: int | None
    session_id: str | None
    embed_id: int | None
    api_key_id: int | None
    prompt: str
    reply: str
    response: str
    include: bool
    feedback: int | None
    created_at: str



# audit_log -----------------------------------------------------------------------------------

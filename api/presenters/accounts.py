"""Users, API keys and invites as AnythingLLM clients parse them (field names are upstream's)."""

from __future__ import annotations

from typing import Any

import msgspec

from application.apikeys import KeyRow
from application.invites import InviteRow
from application.rows import UserRow

MASK = "*" * 24


class UserOut(msgspec.Struct):
    id: int
    username: str
    pfpFilename: str | None
    role: str
    suspended: int
    seen_recovery_codes: bool
    createdAt: str
    lastUpdatedAt: str
    dailyMessageLimit: int | None
    bio: str | None


class UserBrief(msgspec.Struct):
    id: int
    username: str
    role: str


class KeyOwner(msgspec.Struct):
    id: int
    username: str | None
    role: str | None


class ApiKeyOut(msgspec.Struct):
    """Upstream's api_keys row, with the secret masked (upstream leaks it) and our extras."""

    id: int
    name: str | None
    secret: str
    createdBy: KeyOwner | int | None
    createdAt: str
    lastUpdatedAt: str
    prefix: str
    userId: int
    scopes: list[str]
    expiresAt: str | None
    rateLimit: int | None
    revokedAt: str | None
    active: bool


class InviteOut(msgspec.Struct):
    id: int
    code: str
    status: str
    claimedBy: dict[str, Any] | None
    workspaceIds: str
    createdBy: dict[str, Any] | None
    createdAt: str
    lastUpdatedAt: str


def user_out(u: UserRow) -> UserOut:
    return UserOut(
        id=u.id, username=u.username, pfpFilename=u.pfp_filename, role=u.role,
        suspended=int(u.suspended), seen_recovery_codes=True, createdAt=u.created_at,
        lastUpdatedAt=u.updated_at, dailyMessageLimit=u.daily_message_limit, bio=u.bio,
    )


def key_out(row: KeyRow, secret: str | None = None, owner_as_id: bool = False) -> ApiKeyOut:
    """A listed key; with `secret`, the key just made (upstream shows the owner as an id there)."""
    k, user = row.key, row.owner
    owner: KeyOwner | int = k.user_id if owner_as_id else KeyOwner(
        k.user_id, user.username if user else None, user.role if user else None)
    return ApiKeyOut(
        id=k.id, name=k.name, secret=secret or k.display_prefix + MASK, createdBy=owner,
        createdAt=k.created_at, lastUpdatedAt=k.updated_at, prefix=k.display_prefix, userId=k.user_id,
        scopes=list(k.scopes), expiresAt=k.expires_at, rateLimit=k.rate_limit, revokedAt=k.revoked_at,
        active=row.active,
    )


def invite_out(i: InviteRow, code: str | None = None) -> InviteOut:
    import json

    return InviteOut(
        id=i.id, code=code or i.display_prefix + MASK, status=i.status, claimedBy=i.claimed_by,
        workspaceIds=json.dumps(i.workspace_ids), createdBy=i.created_by, createdAt=i.created_at,
        lastUpdatedAt=i.updated_at,
    )

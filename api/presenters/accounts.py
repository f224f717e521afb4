"""Users, API keys, invites, sessions and the accounts routes' error bodies as AnythingLLM clients
parse them (field names are upstream's)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Protocol

import msgspec

from application.apikeys import KeyRow
from application.rows import AuditPage, InviteRow, UserRef, UserRow

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


class InviteUser(msgspec.Struct):
    id: int
    username: str | None


class InviteOut(msgspec.Struct):
    id: int
    code: str
    status: str
    claimedBy: InviteUser | None
    workspaceIds: str  # a JSON array in a string, as upstream stores it
    createdBy: InviteUser | None
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


def _invite_user(ref: UserRef | None) -> InviteUser | None:
    return None if ref is None else InviteUser(ref.id, ref.username)


def invite_out(i: InviteRow, code: str | None = None) -> InviteOut:
    return InviteOut(
        id=i.id, code=code or i.display_prefix + MASK, status=i.status, claimedBy=_invite_user(i.claimed_by),
        workspaceIds=json.dumps(list(i.workspace_ids)), createdBy=_invite_user(i.created_by),
        createdAt=i.created_at, lastUpdatedAt=i.updated_at,
    )


# plain answers ------------------------------------------------------------------------------
class Success(msgspec.Struct):
    """`{"success": true, "error": null}`; its failing form is `api.errors.SuccessError`."""

    success: bool
    error: str | None


class Authenticated(msgspec.Struct):
    authenticated: bool


class Online(msgspec.Struct):
    online: bool


class MultiUserMode(msgspec.Struct):
    multiUserMode: bool


class IsMultiUser(msgspec.Struct):
    isMultiUser: bool


# users and sessions -------------------------------------------------------------------------
class UserList(msgspec.Struct):
    users: list[UserOut]


class BriefList(msgspec.Struct):
    users: list[UserBrief]


class NewUserOut(msgspec.Struct):
    user: UserOut | None
    error: str | None


class NewUserError(msgspec.Struct):
    """`{"user": null, "error": "..."}`: upstream's body when a user cannot be created."""

    user: None
    error: str

    @classmethod
    def of(cls, message: str, status: int) -> NewUserError:
        return cls(None, message)


class LoginOut(msgspec.Struct):
    valid: bool
    token: str | None
    message: str | None
    user: UserOut | None = None


class LoginFailure(msgspec.Struct):
    """`{"valid": false, "token": null, "message": "..."}`: upstream's failed sign-in body."""

    valid: bool
    token: None
    message: str

    @classmethod
    def of(cls, message: str, status: int) -> LoginFailure:
        return cls(False, None, message)


class AuthTokenOut(msgspec.Struct):
    token: str
    loginPath: str


class CheckToken(msgspec.Struct):
    valid: bool
    user: UserOut | None


# invites ------------------------------------------------------------------------------------
class InviteList(msgspec.Struct):
    invites: list[InviteOut]


class NewInviteOut(msgspec.Struct):
    invite: InviteOut | None
    error: str | None


class NewInviteError(msgspec.Struct):
    """`{"invite": null, "error": "..."}`: upstream's body when an invite cannot be made."""

    invite: None
    error: str

    @classmethod
    def of(cls, message: str, status: int) -> NewInviteError:
        return cls(None, message)


class InviteStatus(msgspec.Struct):
    code: str
    status: str


class InviteCheck(msgspec.Struct):
    """Upstream answers 200 either way: the invite, or `invite: null` and why."""

    invite: InviteStatus | None
    error: str | None


# API keys -----------------------------------------------------------------------------------
class GeneratedKey(msgspec.Struct):
    apiKey: ApiKeyOut | None
    error: str | None


class KeyList(msgspec.Struct):
    apiKeys: list[ApiKeyOut]
    error: str | None


# the audit log, the digest chain, the read models -----------------------------------------
class AuditEventOut(msgspec.Struct, rename="camel"):
    position: int
    time: str
    actor_user_id: int | None
    actor_api_key_id: int | None
    correlation_id: str | None
    type: str
    aggregate_id: str
    summary: str


class AuditPageOut(msgspec.Struct, rename="camel"):
    events: list[AuditEventOut]
    total: int
    has_more: bool


class ChainProblemOut(msgspec.Struct):
    position: int
    kind: str
    detail: str


class ChainReportOut(msgspec.Struct, rename="camel"):
    intact: bool
    checked: int
    head_position: int
    head_digest: str
    anchor: str
    problem_count: int
    problems: list[ChainProblemOut]


class StallOut(msgspec.Struct):
    """Where a read model stopped: the event it cannot apply, and why."""

    position: int
    eventType: str
    topic: str
    error: str
    recordedAt: str


class ProjectionStatusOut(msgspec.Struct):
    projection: str
    position: int
    head: int
    behind: int
    stalled: bool
    stall: StallOut | None


class ProjectionsOut(msgspec.Struct):
    projections: list[ProjectionStatusOut]


def audit_page_out(page: AuditPage) -> AuditPageOut:
    return AuditPageOut([AuditEventOut(**msgspec.structs.asdict(e)) for e in page.events], page.total, page.has_more)


class _ChainProblem(Protocol):
    position: int
    kind: str
    detail: str


class _ChainReport(Protocol):
    """What `infrastructure.chain.verify_chain` reports (api/ sees it through this shape)."""

    intact: bool
    checked: int
    head_position: int
    head_digest: bytes
    problem_count: int
    problems: Sequence[_ChainProblem]


def chain_report_out(report: _ChainReport) -> ChainReportOut:
    digest = report.head_digest.hex()
    return ChainReportOut(
        report.intact, report.checked, report.head_position, digest, f"{report.head_position}:{digest}",
        report.problem_count, [ChainProblemOut(p.position, p.kind, p.detail) for p in report.problems])


class _Stall(Protocol):
    position: int
    topic: str
    error: str
    recorded_at: str


def projection_status_out(name: str, position: int, head: int, stall: _Stall | None) -> ProjectionStatusOut:
    shown = None if stall is None else StallOut(
        stall.position, stall.topic.partition(":")[2] or stall.topic, stall.topic, stall.error, stall.recorded_at)
    return ProjectionStatusOut(name, position, head, head - position, stall is not None, shown)

"""Sign-in: password login (JWT sessions), session checks, single-use sign-in tokens."""

from __future__ import annotations

import secrets
from datetime import timedelta

import msgspec

from application.ledger import Command, Context, PublicCommand
from application.rows import UserRow
from application.users import principal_for
from domain.hashing import hash_secret
from domain.timefmt import iso
from domain.errors import InvalidSignInToken, PermissionDenied, UserNotFound
from domain.principal import Actor, Principal
from domain.users import User, user_uuid

AUTH_TOKEN_PREFIX = "allm-tat-"
AUTH_TOKEN_TTL = timedelta(minutes=6)  # as upstream's code (its comment says an hour)


class LoginResult(msgspec.Struct, frozen=True):
    valid: bool
    user: UserRow | None = None
    token: str | None = None
    message: str | None = None


INVALID_CREDENTIALS = "[001] Invalid login credentials."  # one message: no username probing
SUSPENDED = "[004] Account suspended by admin."
INVALID_PASSWORD = "[003] Invalid password provided"


def login(ctx: Context, username: str | None, password: str) -> LoginResult:
    """Multi-user mode: username + password. Single-user mode: the owner's password."""
    if ctx.accounts.is_multi_user():
        row = ctx.accounts.user_named(username or "")
        message = INVALID_CREDENTIALS
    else:
        row = ctx.accounts.user(ctx.accounts.owner_id())
        message = INVALID_PASSWORD
    user = ctx.ledger.find(user_uuid(row.id), User) if row else None
    if not ctx.hasher.verify(user.password_hash if user else None, password) or row is None:
        return LoginResult(valid=False, message=message)
    if row.suspended:
        return LoginResult(valid=False, message=SUSPENDED)
    token = ctx.tokens.issue(row.id, row.username, row.token_version)
    return LoginResult(valid=True, user=row, token=token)


def session_principal(ctx: Context, token: str) -> Principal | None:
    """The user behind a session token, if it is valid and not revoked (token version)."""
    claims = ctx.tokens.read(token)
    if claims is None:
        return None
    user_id, version = claims
    if ctx.accounts.stalled():  # its rows may miss a suspension stored since: ask the aggregate
        user = ctx.ledger.find(user_uuid(user_id), User)
        if user is None or user.deleted or user.suspended or user.token_version != version:
            return None
        return Principal(user_id=user.user_id, username=user.username, role=user.role)
    row = ctx.accounts.user(user_id)
    if row is None or row.deleted or row.suspended or row.token_version != version:
        return None
    return principal_for(ctx, row)


def _require_simple_sso(ctx: Context) -> None:
    if not ctx.simple_sso_enabled or not ctx.accounts.is_multi_user():
        raise PermissionDenied("Simple SSO is not enabled. Set SIMPLE_SSO_ENABLED and enable multi-user mode.")


class IssueAuthToken(Command, frozen=True, kw_only=True):
    user_id: int


def issue_auth_token(ctx: Context, cmd: IssueAuthToken) -> str:
    """A single-use sign-in token for a user (admins only: it is a way to act as them)."""
    _require_simple_sso(ctx)
    if not cmd.principal.is_admin:
        raise PermissionDenied()
    user = ctx.ledger.find(user_uuid(cmd.user_id), User)
    if user is None or user.deleted:
        raise UserNotFound(cmd.user_id)
    token = AUTH_TOKEN_PREFIX + secrets.token_urlsafe(24)
    user.issue_auth_token(cmd.actor(), hash_secret(token), ctx.clock.now() + AUTH_TOKEN_TTL)
    ctx.save(user, project=[ctx.accounts])
    return token


class RedeemAuthToken(PublicCommand, frozen=True, kw_only=True):
    token: str


def redeem_auth_token(ctx: Context, cmd: RedeemAuthToken) -> LoginResult:
    """Swap a sign-in token for a session, once (simple SSO on and multi-user mode only, as
    upstream). The redemption is acted by the token's user."""
    _require_simple_sso(ctx)
    token_hash = hash_secret(cmd.token)
    found = ctx.accounts.auth_token(token_hash)
    if found is None or found.used or found.expires_at <= iso(ctx.clock.now()):
        raise InvalidSignInToken()

    def attempt() -> LoginResult:
        user = ctx.ledger.load(user_uuid(found.user_id), User)
        again = ctx.accounts.auth_token(token_hash)
        if again is None or again.used:
            raise InvalidSignInToken()
        user.redeem_auth_token(Actor(user.user_id, None, cmd.correlation_id), token_hash)
        ctx.save(user, project=[ctx.accounts])
        users_row = ctx.accounts.user(user.user_id)
        assert users_row is not None
        if users_row.suspended or users_row.deleted:
            return LoginResult(valid=False, message=SUSPENDED)
        return LoginResult(valid=True, user=users_row,
                           token=ctx.tokens.issue(users_row.id, users_row.username, users_row.token_version))

    return ctx.retrying(attempt)

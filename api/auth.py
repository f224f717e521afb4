"""Authentication: every request past this point has a Principal (a user, maybe a key).

`/api/v1/*` takes API keys only, as upstream: `Authorization: <any word> <key>`; a missing,
unknown, revoked or expired key is 403 `{"error": "No valid api key found."}`. The internal
`/api/system`, `/api/admin` routes also take session tokens (JWT from /api/request-token)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException, TooManyRequestsException
from litestar.handlers import BaseRouteHandler
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult

from api.errors import NO_VALID_KEY
from application.authentication import (
    RecordExpiry, auth_reads_store, is_expired, lookup_principal, principal_from_store, record_expiry,
)
from application.sessions import session_principal
from domain.hashing import hash_secret
from domain.principal import Principal, Role

if TYPE_CHECKING:
    from api.wiring import Runtime

KEY_PREFIX = "sk-"


def presented_token(connection: ASGIConnection) -> str | None:
    header = connection.headers.get("authorization")
    if not header:
        return None
    parts = header.split(" ")  # the scheme word is ignored, as upstream does
    return parts[1].strip() if len(parts) > 1 and parts[1].strip() else None


class AuthMiddleware(AbstractAuthenticationMiddleware):
    async def authenticate_request(self, connection: ASGIConnection) -> AuthenticationResult:
        runtime = connection.app.state.runtime
        v1 = connection.scope["path"].startswith("/api/v1/")
        token = presented_token(connection)
        principal = await principal_for_token(runtime, token, v1, connection.scope["state"].get("request_id", ""))
        if principal is None:
            if v1:
                raise PermissionDeniedException(NO_VALID_KEY)
            raise NotAuthorizedException("No valid auth token found." if token else "No auth token found.")
        if principal.rate_limit:
            await self._rate_limit(connection, runtime, principal)
        return AuthenticationResult(user=principal, auth=principal.api_key_id)

    async def _rate_limit(self, connection: ASGIConnection, runtime, principal: Principal) -> None:
        decision = await runtime.limiter.hit(f"key:{principal.api_key_id}", principal.rate_limit, 60)
        connection.scope["state"]["rate_limit"] = decision
        if not decision.allowed:
            raise TooManyRequestsException(
                f"Rate limit of {decision.limit} requests per minute exceeded for this API key.",
                headers={"Retry-After": str(decision.reset)},
            )


async def principal_for_token(runtime: Runtime, token: str | None, v1: bool, request_id: str = "") -> Principal | None:
    """Who `token` stands for now: None when it is missing, unknown, revoked or expired (an
    expiry is recorded), or a session token on `/api/v1`. Long-lived responses ask again to
    end when the credential they were opened with stops being valid."""
    if token and token.startswith(KEY_PREFIX):
        return await _key_principal(runtime, token, request_id)
    if token and not v1:
        return await anyio.to_thread.run_sync(session_principal, runtime.ctx, token)
    return None


async def _key_principal(runtime: Runtime, token: str, request_id: str) -> Principal | None:
    secret_hash = hash_secret(token)
    ctx = runtime.ctx
    if auth_reads_store(ctx):  # a read model is stalled: the store decides, not a cache or a stale row
        entry = await anyio.to_thread.run_sync(principal_from_store, ctx, secret_hash)
        return None if entry is None or is_expired(ctx, entry) else entry.principal
    entry = await ctx.cache.get(secret_hash)
    if entry is None:
        entry = await anyio.to_thread.run_sync(lookup_principal, ctx, secret_hash)
        if entry is None:
            return None
        await ctx.cache.put(secret_hash, entry, runtime.settings.auth_cache_ttl)
    if is_expired(ctx, entry):
        if entry.principal.api_key_id is not None:
            cmd = RecordExpiry(correlation_id=request_id, key_id=entry.principal.api_key_id)
            await anyio.to_thread.run_sync(record_expiry, ctx, cmd)
        return None
    return entry.principal


# guards -------------------------------------------------------------------------------------
# A plain OPTIONS request (and a CORS preflight) is answered without authentication, so it has
# no user to check: guards let it through, and it changes and reveals nothing.
def _preflight(connection: ASGIConnection) -> bool:
    return connection.scope["method"] == "OPTIONS"


def requires_scope(scope: str):
    def guard(connection: ASGIConnection, _: BaseRouteHandler) -> None:
        if not _preflight(connection) and not connection.user.has_scope(scope):
            raise PermissionDeniedException(f"This API key lacks the '{scope}' scope.")

    return guard


def requires_role(*roles: Role):
    def guard(connection: ASGIConnection, _: BaseRouteHandler) -> None:
        if not _preflight(connection) and connection.user.role not in roles:
            raise PermissionDeniedException("Your role does not allow this action.")

    return guard

"""Routes without a credential: liveness, mode, sign-in, invite claims."""

from __future__ import annotations

from typing import Annotated

import anyio
import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.datastructures import State
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import Parameter
from msgspec import Meta

from api.errors import SuccessError, raises
from api.presenters import request_id
from api.presenters.accounts import (
    InviteCheck, InviteStatus, LoginFailure, LoginOut, MultiUserMode, Online, Success, user_out,
)
from api.schema import Password as Password  # re-exported: the accounts routes' bodies share it
from application import invites, sessions
from application.ledger import Context
from domain.errors import MultiUserModeRequired, NotFound, PermissionDenied

Name = Annotated[str, Meta(max_length=200)]
InviteCode = Annotated[str, Parameter(min_length=1, max_length=100, description="an invite code")]
PUBLIC = {"exclude_from_auth": True}


class LoginBody(msgspec.Struct):
    password: Password
    username: Name | None = None


async def _login_allowed(request: Request, state: State, username: str) -> int | None:
    """Seconds to wait when this address (or this address and username) tried too often."""
    settings, limiter = state.runtime.settings, state.runtime.limiter
    address = request.client.host if request.client else "unknown"
    window, limit = settings.login_window_seconds, settings.login_max_attempts
    for key, cap in ((f"login:{address}:{username}", limit), (f"login:{address}", limit * 5)):
        decision = await limiter.hit(key, cap, window)
        if not decision.allowed:
            return decision.reset
    return None


class ClaimBody(msgspec.Struct):
    username: Name
    password: Password


class PublicController(Controller):
    """Routes that take no credential."""

    opt = PUBLIC
    tags = ["Public"]

    @get("/api/ping", operation_id="ping", summary="Liveness probe", opt={"no_store": True})
    async def ping(self) -> Online:
        return Online(True)

    @get("/api/system/multi-user-mode", operation_id="multiUserMode", sync_to_thread=True)
    def multi_user_mode(self, ctx: Context) -> MultiUserMode:
        return MultiUserMode(ctx.accounts.is_multi_user())

    @post("/api/request-token", operation_id="requestToken", status_code=200, responses={
        401: ResponseSpec(LoginOut, description="Single-user mode: a wrong password.", generate_examples=False),
        429: ResponseSpec(LoginOut, description="Too many attempts from this address; see Retry-After.",
                          generate_examples=False)})
    async def request_token(self, request: Request, state: State, ctx: Context, data: LoginBody) -> Response[LoginOut]:
        """Sign in. Multi-user mode: `{username, password}`; single-user mode: `{password}` of the owner.

        Failures answer 200 `valid:false` in multi-user mode and 401 in single-user mode, as upstream;
        unknown user and wrong password give the same message (upstream's differ)."""
        wait = await _login_allowed(request, state, data.username or "")
        if wait is not None:
            return Response(LoginOut(False, None, "Too many login attempts. Try again later."),
                            status_code=429, headers={"Retry-After": str(wait)})
        result = await anyio.to_thread.run_sync(sessions.login, ctx, data.username, data.password)
        body = LoginOut(result.valid, result.token, result.message, user_out(result.user) if result.user else None)
        single_user_failure = not result.valid and result.message == sessions.INVALID_PASSWORD
        return Response(body, status_code=401 if single_user_failure else 200)

    @get("/api/request-token/sso/simple", operation_id="simpleSso", sync_to_thread=True,
         opt={"error_shape": LoginFailure, **raises(sessions.InvalidSignInToken, PermissionDenied)})
    def simple_sso(self, request: Request, ctx: Context,
                   token: Annotated[str, Parameter(max_length=200, description="the temporary auth token")]) -> LoginOut:
        """Swap a single-use token from `/v1/users/{id}/issue-auth-token` for a session. An unknown,
        used or expired token is 401 and simple SSO off (or single-user mode) 403, as upstream."""
        result = sessions.redeem_auth_token(ctx, sessions.RedeemAuthToken(correlation_id=request_id(request), token=token))
        return LoginOut(result.valid, result.token, result.message, user_out(result.user) if result.user else None)

    @get("/api/invite/{code:str}", operation_id="checkInvite", sync_to_thread=True)
    def check_invite(self, ctx: Context, code: InviteCode) -> InviteCheck:
        """200 either way, as upstream: `{invite: {code, status}}` or `{invite: null, error}`."""
        problem = invites.invite_problem(ctx, code)
        return InviteCheck(None, problem) if problem else InviteCheck(InviteStatus(code, "pending"), None)

    @post("/api/invite/{code:str}", operation_id="claimInvite", status_code=200, sync_to_thread=True,
          opt={"error_shape": SuccessError, **raises(MultiUserModeRequired, NotFound),
               "error_status": {404: 200, 409: 200}})
    def claim_invite(self, request: Request, ctx: Context, code: InviteCode, data: ClaimBody) -> Success:
        """Become a `default` user, a member of the invite's workspaces. An invite that is unknown
        or no longer pending, or a username that is taken, answers 200 `{success: false, error}`
        as upstream (its clients read `success`, not the status)."""
        invites.claim_invite(ctx, invites.ClaimInvite(
            code=code, username=data.username, password=data.password, correlation_id=request_id(request)))
        return Success(True, None)

"""Internal system routes: enable multi-user mode, check a session."""

from __future__ import annotations

import msgspec
from litestar import Controller, Request, get, post

from api.auth import requires_role, requires_scope
from api.errors import SuccessError
from api.presenters import request_id
from api.presenters.accounts import CheckToken, Success, user_out
from api.routes.public import Name, Password
from application import users
from application.ledger import Context
from domain.errors import Conflict
from domain.principal import Role


class EnableMultiUserBody(msgspec.Struct):
    username: Name
    password: Password


class SystemController(Controller):
    path = "/api/system"
    tags = ["System"]

    @post("/enable-multi-user", operation_id="enableMultiUser", status_code=200,
          guards=[requires_scope("admin"), requires_role(Role.ADMIN)], sync_to_thread=True,
          opt={"error_shape": SuccessError, "error_status": {Conflict.status: 200}})
    def enable_multi_user(self, request: Request, ctx: Context, data: EnableMultiUserBody) -> Success:
        """The owner becomes the first admin, named and with a password. There is no way back,
        as upstream; when already enabled, 200 `{success: false, error}` as upstream. Unlike
        upstream, a failure deletes nothing."""
        users.enable_multi_user(ctx, users.EnableMultiUser(
            principal=request.user, correlation_id=request_id(request),
            username=data.username, password=data.password))
        return Success(True, None)

    @get("/check-token", operation_id="checkToken", sync_to_thread=True)
    def check_token(self, request: Request, ctx: Context) -> CheckToken:
        row = ctx.accounts.user(request.user.user_id)
        return CheckToken(True, user_out(row) if row else None)

"""`POST /api/v1/admin/users/{id}/erase`: erase a user's content by crypto-shredding (admins
with the `admin` scope; also in single-user mode, and for a deleted user). The user's data
key is destroyed and `User.Erased` recorded with the acting user and key and the reason; the
read models have overwritten their copies when it answers (application/erasure.py)."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, Request, post
from msgspec import Meta

from api.auth import requires_role, requires_scope
from api.errors import SuccessError, raises
from api.presenters import parse_id, request_id
from api.schema import IdPath
from application.erasure import EraseUser, erase_user
from application.ledger import Context
from domain.errors import PermissionDenied, UserNotFound
from domain.principal import Role
from domain.sealed import REASON_MAX

Reason = Annotated[str, Meta(min_length=1, max_length=REASON_MAX, description="why; recorded in the event")]


class EraseBody(msgspec.Struct):
    reason: Reason


class ErasureOut(msgspec.Struct):
    success: bool
    userId: int
    username: str
    keysDestroyed: int
    error: None = None


class ErasureController(Controller):
    path = "/admin/users"
    tags = ["Admin"]
    guards = [requires_scope("admin"), requires_role(Role.ADMIN)]
    opt = {"error_shape": SuccessError}

    @post("/{user_id:str}/erase", operation_id="v1AdminEraseUser", status_code=200,
          opt=raises(UserNotFound, PermissionDenied), sync_to_thread=True)
    def erase(self, ctx: Context, request: Request, user_id: IdPath, data: EraseBody) -> ErasureOut:
        """Destroy the user's data key: their chats and profile text read as `[erased]` everywhere."""
        done = erase_user(ctx, EraseUser(principal=request.user, correlation_id=request_id(request),
                                         user_id=parse_id(user_id, "user"), reason=data.reason))
        return ErasureOut(True, done.user_id, done.username, done.keys_destroyed)

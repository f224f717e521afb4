"""The developer API (`/api/v1`): authentication, admin and user management.

Admin routes answer 401 outside multi-user mode, as upstream. Unlike upstream, a key acts
with its owner's role (reference §3.5) and its scopes: user management needs the `admin`
scope and an admin or manager owner; minting sign-in tokens needs an admin."""

from __future__ import annotations

import json
from typing import Annotated, Literal

import msgspec
from litestar import Controller, Request, Router, delete, get, post
from msgspec import Meta

from api.auth import requires_role, requires_scope
from api.errors import SuccessError, raises
from api.presenters import parse_id, request_id
from api.presenters.accounts import (
    AuthTokenOut, Authenticated, BriefList, InviteList, IsMultiUser, NewInviteError, NewInviteOut, NewUserError,
    NewUserOut, Success, UserBrief, UserList, invite_out, user_out,
)
from api.schema import Flag, IdPath, PublicId, flag
from api.routes.public import Name, Password
from application import invites, sessions, users
from application.ledger import Context
from domain.errors import InviteNotFound, LastAdmin, PermissionDenied, UserNotFound, UsernameTaken
from domain.principal import Role
from domain.system import PREFERENCE_LABELS

COMMON = {"sync_to_thread": True}
MANAGERS = [requires_role(Role.ADMIN, Role.MANAGER)]
RoleName = Literal["default", "manager", "admin"]
DailyLimit = Annotated[int, Meta(ge=1, le=2**31 - 1, description="chats a day; null: no limit")]
Bio = Annotated[str, Meta(max_length=1000)]
PfpName = Annotated[str, Meta(max_length=255)]


class AuthController(Controller):
    path = "/auth"
    tags = ["Authentication"]

    @get("/", operation_id="v1Auth")
    async def auth(self) -> Authenticated:
        """Verify the attached Authorization header holds a valid API key."""
        return Authenticated(True)


class NewUserBody(msgspec.Struct):
    username: Name
    password: Password
    role: RoleName = "default"
    dailyMessageLimit: DailyLimit | None = None
    bio: Bio = ""


class UpdateUserBody(msgspec.Struct):
    username: Name | None = None
    password: Password | None = None
    role: RoleName | None = None
    suspended: Flag | None = None
    dailyMessageLimit: DailyLimit | None | msgspec.UnsetType = msgspec.UNSET
    bio: Bio | None = None
    pfpFilename: PfpName | None | msgspec.UnsetType = msgspec.UNSET


class NewInviteBody(msgspec.Struct):
    workspaceIds: Annotated[list[PublicId], Meta(max_length=1000)] = []


PrefScalar = Annotated[str, Meta(max_length=10_000)] | int | float | bool | None
PrefValue = PrefScalar | Annotated[list[Annotated[str, Meta(max_length=200)]], Meta(max_length=200)]
# `{label: value}` for upstream's known `system_settings` labels; other keys are ignored, as upstream.
PreferencesBody = msgspec.defstruct(
    "PreferencesBody", [(label, PrefValue | msgspec.UnsetType, msgspec.UNSET) for label in sorted(PREFERENCE_LABELS)])


Labelled = dict[str, str | None]  # label -> the text system_settings keeps (None: cleared)


def _preference_values(data: msgspec.Struct) -> Labelled:
    """Each label sent, as text: lists as JSON, other values as they print."""
    values: Labelled = {}
    for label in data.__struct_fields__:
        value = getattr(data, label)
        if value is msgspec.UNSET:
            continue
        values[label] = None if value is None else json.dumps(value) if isinstance(value, list) else str(value)
    return values


class AdminController(Controller):
    """Failures answer `{success: false, error}` (creation: `{user|invite: null, error}`), as upstream."""

    path = "/admin"
    tags = ["Admin"]
    guards = [requires_scope("admin")]
    opt = {"error_shape": SuccessError}

    @get("/is-multi-user-mode", operation_id="v1IsMultiUserMode", **COMMON)
    def is_multi_user_mode(self, ctx: Context) -> IsMultiUser:
        return IsMultiUser(ctx.accounts.is_multi_user())

    @get("/users", operation_id="v1AdminListUsers", guards=MANAGERS, **COMMON)
    def list_users(self, ctx: Context) -> UserList:
        users.require_multi_user(ctx)
        return UserList([user_out(u) for u in ctx.accounts.active_users()])

    @post("/users/new", operation_id="v1AdminCreateUser", status_code=200, guards=MANAGERS,
          opt={"error_shape": NewUserError, "error_status": {UsernameTaken.status: 400}}, **COMMON)
    def create_user(self, ctx: Context, request: Request, data: NewUserBody) -> NewUserOut:
        """A taken username is 400 `{user: null, error}`, as upstream."""
        users.require_multi_user(ctx)
        row = users.create_user(ctx, users.CreateUser(
            principal=request.user, correlation_id=request_id(request), username=data.username,
            password=data.password, role=data.role, daily_message_limit=data.dailyMessageLimit, bio=data.bio))
        return NewUserOut(user_out(row), None)

    @post("/users/{user_id:str}", operation_id="v1AdminUpdateUser", status_code=200, guards=MANAGERS,
          opt=raises(UserNotFound, PermissionDenied, LastAdmin), **COMMON)
    def update_user(self, ctx: Context, request: Request, user_id: IdPath, data: UpdateUserBody) -> Success:
        users.require_multi_user(ctx)
        users.update_user(ctx, users.UpdateUser(
            principal=request.user, correlation_id=request_id(request), user_id=parse_id(user_id, "user"),
            username=data.username, password=data.password, role=data.role, suspended=flag(data.suspended),
            daily_message_limit=data.dailyMessageLimit, bio=data.bio, pfp_filename=data.pfpFilename))
        return Success(True, None)

    @delete("/users/{user_id:str}", operation_id="v1AdminDeleteUser", status_code=200, guards=MANAGERS,
            opt=raises(UserNotFound, PermissionDenied), **COMMON)
    def delete_user(self, ctx: Context, request: Request, user_id: IdPath) -> Success:
        users.require_multi_user(ctx)
        users.delete_user(ctx, users.DeleteUser(
            principal=request.user, correlation_id=request_id(request), user_id=parse_id(user_id, "user")))
        return Success(True, None)

    @get("/invites", operation_id="v1AdminListInvites", guards=MANAGERS, **COMMON)
    def list_invites(self, ctx: Context, request: Request) -> InviteList:
        return InviteList([invite_out(i) for i in invites.list_invites(ctx, request.user)])

    @post("/invite/new", operation_id="v1AdminCreateInvite", status_code=200, guards=MANAGERS,
          opt={"error_shape": NewInviteError}, **COMMON)
    def create_invite(self, ctx: Context, request: Request, data: NewInviteBody | None = None) -> NewInviteOut:
        """The code is shown once, here; listings show only its first characters."""
        new = invites.create_invite(ctx, invites.CreateInvite(
            principal=request.user, correlation_id=request_id(request),
            workspace_ids=(data or NewInviteBody()).workspaceIds))
        return NewInviteOut(invite_out(new.invite, code=new.code), None)

    @delete("/invite/{invite_id:str}", operation_id="v1AdminDisableInvite", status_code=200, guards=MANAGERS,
            opt=raises(InviteNotFound, PermissionDenied), **COMMON)
    def disable_invite(self, ctx: Context, request: Request, invite_id: IdPath) -> Success:
        users.require_multi_user(ctx)
        invites.disable_invite(ctx, invites.DisableInvite(
            principal=request.user, correlation_id=request_id(request), invite_id=parse_id(invite_id, "invite")))
        return Success(True, None)

    @post("/preferences", operation_id="v1AdminPreferences", status_code=200, guards=MANAGERS, **COMMON)
    def preferences(self, ctx: Context, request: Request, data: PreferencesBody) -> Success:  # type: ignore[valid-type]
        """Known `system_settings` labels only; managers may set the branding labels only."""
        users.require_multi_user(ctx)
        users.update_preferences(ctx, users.UpdatePreferences(
            principal=request.user, correlation_id=request_id(request), values=_preference_values(data)))
        return Success(True, None)


class UsersController(Controller):
    path = "/users"
    tags = ["User Management"]
    guards = [requires_scope("admin")]

    @get("/", operation_id="v1ListUsers", guards=MANAGERS, **COMMON)
    def list_users(self, ctx: Context) -> BriefList:
        users.require_multi_user(ctx)
        return BriefList([UserBrief(u.id, u.username, u.role) for u in ctx.accounts.active_users()])

    @get("/{user_id:str}/issue-auth-token", operation_id="v1IssueAuthToken", guards=[requires_role(Role.ADMIN)],
         opt=raises(UserNotFound), **COMMON)
    def issue_auth_token(self, ctx: Context, request: Request, user_id: IdPath) -> AuthTokenOut:
        token = sessions.issue_auth_token(ctx, sessions.IssueAuthToken(
            principal=request.user, correlation_id=request_id(request), user_id=parse_id(user_id, "user")))
        return AuthTokenOut(token, f"/sso/simple?token={token}")


def v1_router(upload_max_bytes: int) -> Router:
    from api.routes.admin_events import AdminEventsController
    from api.routes.audit import AuditController, ProjectionsController
    from api.routes.chat import ChatController, ChatLogsController
    from api.routes.documents import DocumentController
    from api.routes.embeds import EmbedController
    from api.routes.erasure import ErasureController
    from api.routes.generated import GeneratedFilesController
    from api.routes.images import ImagesController
    from api.routes.openai_v1 import OpenAiChatController, OpenAiController
    from api.routes.system_v1 import SystemV1Controller
    from api.routes.webhooks import WebhooksController
    from api.routes.workspaces import WorkspaceController, WorkspaceMembersController

    # Uploads may be larger than other bodies: that controller gets its own limit.
    documents = type("DocumentController", (DocumentController,), {"request_max_body_size": upload_max_bytes + (1 << 20)})
    return Router(path="/api/v1", route_handlers=[
        AuthController, AdminController, UsersController, WorkspaceController, WorkspaceMembersController,
        documents, SystemV1Controller, OpenAiController, EmbedController, ChatController, ChatLogsController,
        OpenAiChatController, AuditController, ProjectionsController, ImagesController, GeneratedFilesController,
        AdminEventsController, WebhooksController, ErasureController,
    ])

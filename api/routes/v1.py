"""The developer API (`/api/v1`): authentication, admin and user management.

Admin routes answer 401 outside multi-user mode, as upstream. Unlike upstream, a key acts
with its owner's role (reference §3.5) and its scopes: user management needs the `admin`
scope and an admin or manager owner; minting sign-in tokens needs an admin."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, Router, delete, get, post
from litestar.params import Parameter
from msgspec import Meta

from api.auth import requires_role, requires_scope
from api.presenters.accounts import InviteOut, UserBrief, UserOut, invite_out, user_out
from api.presenters import parse_id, request_id
from api.routes.public import Name, Password, Success
from application import invites, sessions, users
from application.ledger import Context
from domain.errors import DomainError
from domain.principal import Role

COMMON = {"sync_to_thread": True}
UserId = Annotated[str, Parameter(description="user id (an integer)")]


class Authenticated(msgspec.Struct):
    authenticated: bool


class AuthController(Controller):
    path = "/auth"
    tags = ["Authentication"]

    @get("/", operation_id="v1Auth")
    async def auth(self) -> Authenticated:
        """Verify the attached Authorization header holds a valid API key."""
        return Authenticated(True)


class IsMultiUser(msgspec.Struct):
    isMultiUser: bool


class UserList(msgspec.Struct):
    users: list[UserOut]


class NewUserBody(msgspec.Struct):
    username: Name
    password: Password
    role: Annotated[str, Meta(max_length=20)] = "default"
    dailyMessageLimit: int | None = None
    bio: Annotated[str, Meta(max_length=1000)] = ""


class NewUserOut(msgspec.Struct):
    user: UserOut | None
    error: str | None


class UpdateUserBody(msgspec.Struct):
    username: Name | None = None
    password: Password | None = None
    role: Annotated[str, Meta(max_length=20)] | None = None
    suspended: int | bool | None = None
    dailyMessageLimit: int | None | msgspec.UnsetType = msgspec.UNSET
    bio: Annotated[str, Meta(max_length=1000)] | None = None
    pfpFilename: Annotated[str, Meta(max_length=255)] | None | msgspec.UnsetType = msgspec.UNSET


class InviteList(msgspec.Struct):
    invites: list[InviteOut]


class NewInviteBody(msgspec.Struct):
    workspaceIds: Annotated[list[int], Meta(max_length=1000)] = []


class NewInviteOut(msgspec.Struct):
    invite: InviteOut | None
    error: str | None


class AdminController(Controller):
    path = "/admin"
    tags = ["Admin"]
    guards = [requires_scope("admin")]

    @get("/is-multi-user-mode", operation_id="v1IsMultiUserMode", **COMMON)
    def is_multi_user_mode(self, ctx: Context) -> IsMultiUser:
        return IsMultiUser(ctx.accounts.is_multi_user())

    @get("/users", operation_id="v1AdminListUsers", guards=[requires_role(Role.ADMIN, Role.MANAGER)], **COMMON)
    def list_users(self, ctx: Context) -> UserList:
        users.require_multi_user(ctx)
        return UserList([user_out(u) for u in ctx.accounts.active_users()])

    @post("/users/new", operation_id="v1AdminCreateUser", status_code=200,
          guards=[requires_role(Role.ADMIN, Role.MANAGER)], **COMMON)
    def create_user(self, ctx: Context, request: Request, data: NewUserBody) -> Response[NewUserOut]:
        users.require_multi_user(ctx)
        try:
            row = users.create_user(ctx, users.CreateUser(
                principal=request.user, correlation_id=request_id(request), username=data.username,
                password=data.password, role=data.role, daily_message_limit=data.dailyMessageLimit, bio=data.bio))
        except DomainError as e:
            return Response(NewUserOut(None, str(e)), status_code=e.status if e.status != 409 else 400)
        return Response(NewUserOut(user_out(row), None))

    @post("/users/{user_id:str}", operation_id="v1AdminUpdateUser", status_code=200,
          guards=[requires_role(Role.ADMIN, Role.MANAGER)], **COMMON)
    def update_user(self, ctx: Context, request: Request, user_id: UserId, data: UpdateUserBody) -> Response[Success]:
        users.require_multi_user(ctx)
        try:
            users.update_user(ctx, users.UpdateUser(
                principal=request.user, correlation_id=request_id(request), user_id=parse_id(user_id, "user"),
                username=data.username, password=data.password, role=data.role,
                suspended=None if data.suspended is None else bool(data.suspended),
                daily_message_limit=data.dailyMessageLimit, bio=data.bio, pfp_filename=data.pfpFilename))
        except DomainError as e:
            return Response(Success(False, str(e)), status_code=e.status)
        return Response(Success(True, None))

    @delete("/users/{user_id:str}", operation_id="v1AdminDeleteUser", status_code=200,
            guards=[requires_role(Role.ADMIN, Role.MANAGER)], **COMMON)
    def delete_user(self, ctx: Context, request: Request, user_id: UserId) -> Response[Success]:
        users.require_multi_user(ctx)
        try:
            users.delete_user(ctx, users.DeleteUser(
                principal=request.user, correlation_id=request_id(request), user_id=parse_id(user_id, "user")))
        except DomainError as e:
            return Response(Success(False, str(e)), status_code=e.status)
        return Response(Success(True, None))

    @get("/invites", operation_id="v1AdminListInvites", guards=[requires_role(Role.ADMIN, Role.MANAGER)], **COMMON)
    def list_invites(self, ctx: Context, request: Request) -> InviteList:
        return InviteList([invite_out(i) for i in invites.list_invites(ctx, request.user)])

    @post("/invite/new", operation_id="v1AdminCreateInvite", status_code=200,
          guards=[requires_role(Role.ADMIN, Role.MANAGER)], **COMMON)
    def create_invite(self, ctx: Context, request: Request, data: NewInviteBody | None = None) -> NewInviteOut:
        """The code is shown once, here; listings show only its first characters."""
        new = invites.create_invite(ctx, invites.CreateInvite(
            principal=request.user, correlation_id=request_id(request),
            workspace_ids=(data or NewInviteBody()).workspaceIds))
        return NewInviteOut(invite_out(new.invite, code=new.code), None)

    @delete("/invite/{invite_id:str}", operation_id="v1AdminDisableInvite", status_code=200,
            guards=[requires_role(Role.ADMIN, Role.MANAGER)], **COMMON)
    def disable_invite(self, ctx: Context, request: Request, invite_id: Annotated[str, Parameter()]) -> Response[Success]:
        users.require_multi_user(ctx)
        try:
            invites.disable_invite(ctx, invites.DisableInvite(
                principal=request.user, correlation_id=request_id(request),
                invite_id=parse_id(invite_id, "invite")))
        except DomainError as e:
            return Response(Success(False, str(e)), status_code=e.status)
        return Response(Success(True, None))

    @post("/preferences", operation_id="v1AdminPreferences", status_code=200,
          guards=[requires_role(Role.ADMIN, Role.MANAGER)], **COMMON)
    def preferences(self, ctx: Context, request: Request, data: dict[str, Any]) -> Success:
        """Known `system_settings` labels only; managers may set the branding labels only."""
        users.require_multi_user(ctx)
        values = {k: None if v is None else str(v)[:10_000] for k, v in data.items()}
        users.update_preferences(ctx, users.UpdatePreferences(
            principal=request.user, correlation_id=request_id(request), values=values))
        return Success(True, None)


class BriefList(msgspec.Struct):
    users: list[UserBrief]


class AuthTokenOut(msgspec.Struct):
    token: str
    loginPath: str


class UsersController(Controller):
    path = "/users"
    tags = ["User Management"]
    guards = [requires_scope("admin")]

    @get("/", operation_id="v1ListUsers", guards=[requires_role(Role.ADMIN, Role.MANAGER)], **COMMON)
    def list_users(self, ctx: Context) -> BriefList:
        users.require_multi_user(ctx)
        return BriefList([UserBrief(u.id, u.username, u.role) for u in ctx.accounts.active_users()])

    @get("/{user_id:str}/issue-auth-token", operation_id="v1IssueAuthToken",
         guards=[requires_role(Role.ADMIN)], **COMMON)
    def issue_auth_token(self, ctx: Context, request: Request, user_id: UserId) -> AuthTokenOut:
        token = sessions.issue_auth_token(ctx, sessions.IssueAuthToken(
            principal=request.user, correlation_id=request_id(request), user_id=parse_id(user_id, "user")))
        return AuthTokenOut(token, f"/sso/simple?token={token}")


def v1_router(upload_max_bytes: int) -> Router:
    from api.routes.audit import AuditController, ProjectionsController
    from api.routes.chat import ChatController, ChatLogsController
    from api.routes.documents import DocumentController
    from api.routes.embeds import EmbedController
    from api.routes.generated import GeneratedFilesController
    from api.routes.images import ImagesController
    from api.routes.openai_v1 import OpenAiChatController, OpenAiController
    from api.routes.system_v1 import SystemV1Controller
    from api.routes.workspaces import WorkspaceController, WorkspaceMembersController

    # Uploads may be larger than other bodies: that controller gets its own limit.
    documents = type("DocumentController", (DocumentController,), {"request_max_body_size": upload_max_bytes + (1 << 20)})
    return Router(path="/api/v1", route_handlers=[
        AuthController, AdminController, UsersController, WorkspaceController, WorkspaceMembersController,
        documents, SystemV1Controller, OpenAiController, EmbedController, ChatController, ChatLogsController,
        OpenAiChatController, AuditController, ProjectionsController, ImagesController, GeneratedFilesController,
    ])

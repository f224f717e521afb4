"""Workspaces over /api/v1, with AnythingLLM's paths, bodies and response shapes. Errors go
through `api.errors`: each route names its family's error body and the statuses it may raise."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, Request, Response, delete, get, post
from litestar.enums import MediaType
from litestar.openapi.datastructures import ResponseSpec
from msgspec import UNSET, Meta, UnsetType

from api.auth import requires_scope
from api.errors import SuccessError, raises
from api.presenters import request_id
from api.presenters.library import (
    EmbeddingsAnswer, EmbedError, MembersAnswer, MembersError, MessageAnswer, MessageError, SearchAnswer,
    SearchError, SuccessAnswer, UsersAnswer, UsersError, WorkspaceAnswer, WorkspaceError, WorkspaceFound,
    WorkspaceList, WorkspaceOut, members_out, workspace_out,
)
from api.schema import IdPath, PublicId, Short, SlugPath, Text
from application import users, workspaces as ws
from application.access import visible_workspace
from application.ledger import Context
from application.rows import WorkspaceRow
from application.search import MAX_QUERY_CHARS, has_vectors, vector_search
from domain.errors import NotFound
from domain.principal import Principal
from domain.workspaces import MAX_TOP_N

COMMON = {"sync_to_thread": True}
DocPath = Annotated[str, Meta(max_length=1000)]
Number = Annotated[float, Meta(ge=-1e12, le=1e12)]


class WorkspaceBody(msgspec.Struct):
    """Writable workspace fields; what is left out stays as it is (null resets a field).
    Numbers out of upstream's range are clamped (as upstream), not refused."""

    name: Short | None | UnsetType = UNSET
    similarityThreshold: Number | None | UnsetType = UNSET
    openAiTemp: Number | None | UnsetType = UNSET
    openAiHistory: Annotated[int, Meta(ge=-(2**53), le=2**53)] | None | UnsetType = UNSET
    openAiPrompt: Text | None | UnsetType = UNSET
    queryRefusalResponse: Text | None | UnsetType = UNSET
    chatMode: Short | None | UnsetType = UNSET
    topN: Annotated[int, Meta(ge=-(2**53), le=2**53)] | None | UnsetType = UNSET
    chatProvider: Short | None | UnsetType = UNSET
    chatModel: Short | None | UnsetType = UNSET
    agentProvider: Short | None | UnsetType = UNSET
    agentModel: Short | None | UnsetType = UNSET
    vectorSearchMode: Short | None | UnsetType = UNSET
    router_id: PublicId | None | UnsetType = UNSET
    pfpFilename: Short | None | UnsetType = UNSET

    def given(self) -> ws.Settings:
        """The settings sent, `name` left out."""
        return {f: v for f in self.__struct_fields__ if f != "name" and (v := getattr(self, f)) is not UNSET}

    def name_given(self) -> str | None:
        return None if self.name is UNSET else self.name


class EmbeddingsBody(msgspec.Struct):
    adds: Annotated[list[DocPath], Meta(max_length=10_000)] = []
    deletes: Annotated[list[DocPath], Meta(max_length=10_000)] = []


class PinBody(msgspec.Struct):
    docPath: DocPath
    pinStatus: bool = False


class SearchBody(msgspec.Struct):
    query: Annotated[str, Meta(max_length=MAX_QUERY_CHARS)] | None = None
    topN: Annotated[int, Meta(ge=1, le=MAX_TOP_N)] | None = None
    scoreThreshold: Annotated[float, Meta(ge=0.0, le=1.0)] | None = None


class UserIdsBody(msgspec.Struct):
    userIds: Annotated[list[PublicId], Meta(max_length=10_000)]
    reset: bool = False


def _with_documents(ctx: Context, principal: Principal, row: WorkspaceRow) -> WorkspaceOut:
    return workspace_out(row, documents=ws.documents_of(ctx, row.id), threads=ws.threads_of(ctx, principal, row.id))


DELETED = ResponseSpec(str, description="The workspace was deleted: `OK` as text/plain, as upstream's sendStatus(200).",
                       media_type=MediaType.TEXT, generate_examples=False)
WORKSPACE_ERRORS = {"error_shape": WorkspaceError}


class WorkspaceController(Controller):
    path = "/"
    tags = ["Workspaces"]

    @post("/workspace/new", operation_id="v1CreateWorkspace", status_code=200, opt=WORKSPACE_ERRORS, **COMMON)
    def create(self, ctx: Context, request: Request, data: WorkspaceBody) -> WorkspaceAnswer:
        """Create a workspace; the slug comes from the name as upstream's slugify makes it (an
        8-digit suffix is added on collision)."""
        row = ws.create_workspace(ctx, ws.CreateWorkspace(
            principal=request.user, correlation_id=request_id(request), name=data.name_given(), settings=data.given()))
        return WorkspaceAnswer(workspace_out(row), None)

    @get("/workspaces", operation_id="v1ListWorkspaces", guards=[requires_scope("read")], **COMMON)
    def list_all(self, ctx: Context, request: Request) -> WorkspaceList:
        """Every workspace the caller may see, each with the caller's threads in it."""
        return WorkspaceList([workspace_out(r, threads=ws.threads_of(ctx, request.user, r.id))
                              for r in ws.list_workspaces(ctx, request.user)])

    @get("/workspace/{slug:str}", operation_id="v1GetWorkspace", **COMMON)
    def get_one(self, ctx: Context, request: Request, slug: SlugPath) -> WorkspaceFound:
        """`workspace` is an array, as upstream: empty (200) for a slug that is unknown or not
        visible to the caller; AnythingLLM's CLI then creates its default workspace."""
        try:
            row = visible_workspace(ctx, request.user, slug)
        except NotFound:  # upstream's answer for an unknown slug, not an error
            return WorkspaceFound([])
        return WorkspaceFound([_with_documents(ctx, request.user, row)])

    @delete("/workspace/{slug:str}", operation_id="v1DeleteWorkspace", status_code=200, media_type=MediaType.TEXT,
            responses={200: DELETED}, opt=raises(NotFound), **COMMON)
    def remove(self, ctx: Context, request: Request, slug: SlugPath) -> Response[str]:
        ws.delete_workspace(ctx, ws.DeleteWorkspace(principal=request.user, correlation_id=request_id(request),
                                                    slug=slug))
        return Response("OK", media_type=MediaType.TEXT)

    @post("/workspace/{slug:str}/update", operation_id="v1UpdateWorkspace", status_code=200,
          opt={**WORKSPACE_ERRORS, **raises(NotFound)}, **COMMON)
    def update(self, ctx: Context, request: Request, slug: SlugPath, data: WorkspaceBody) -> WorkspaceAnswer:
        changes: ws.Settings = data.given()
        if (name := data.name_given()) is not None:
            changes["name"] = name
        row, changed = ws.update_workspace(ctx, ws.UpdateWorkspace(
            principal=request.user, correlation_id=request_id(request), slug=slug, changes=changes))
        return WorkspaceAnswer(workspace_out(row), None if changed else "No valid fields to update!")

    @post("/workspace/{slug:str}/update-embeddings", operation_id="v1UpdateEmbeddings", status_code=200,
          opt={**WORKSPACE_ERRORS, **raises(NotFound)}, **COMMON)
    def update_embeddings(self, ctx: Context, request: Request, slug: SlugPath, data: EmbeddingsBody) -> EmbeddingsAnswer:
        """Embed (`adds`) or unembed (`deletes`) documents by docpath. Unlike upstream,
        documents that could not be embedded are listed in `failedToEmbed` with the reason."""
        row, failures = ws.update_embeddings(ctx, ws.UpdateEmbeddings(
            principal=request.user, correlation_id=request_id(request), slug=slug,
            adds=data.adds, deletes=data.deletes))
        return EmbeddingsAnswer(_with_documents(ctx, request.user, row), None, [f.docpath for f in failures],
                                [EmbedError(f.docpath, f.error) for f in failures])

    @post("/workspace/{slug:str}/update-pin", operation_id="v1UpdatePin", status_code=200,
          opt={"error_shape": MessageError, **raises(NotFound)}, **COMMON)
    def update_pin(self, ctx: Context, request: Request, slug: SlugPath, data: PinBody) -> MessageAnswer:
        ws.update_pin(ctx, ws.UpdatePin(principal=request.user, correlation_id=request_id(request), slug=slug,
                                        docpath=data.docPath, pinned=data.pinStatus))
        return MessageAnswer("Pin status updated successfully")

    @post("/workspace/{slug:str}/vector-search", operation_id="v1VectorSearch", status_code=200,
          opt={"error_shape": SearchError, **raises(NotFound)}, **COMMON)
    def search(self, ctx: Context, request: Request, slug: SlugPath, data: SearchBody) -> SearchAnswer:
        """Cosine search: `score` is the similarity, `distance = 1 - score`; hits below
        `scoreThreshold` (default: the workspace's similarityThreshold) are left out."""
        hits = vector_search(ctx, request.user, slug, data.query, data.topN, data.scoreThreshold)
        if not hits and not has_vectors(ctx, visible_workspace(ctx, request.user, slug)):
            return SearchAnswer([], "No embeddings found for this workspace.")
        return SearchAnswer(hits)


class WorkspaceMembersController(Controller):
    """Membership (multi-user mode; admins and managers). `{workspace}` is the numeric id on
    the first two routes and the slug on manage-users, as upstream."""

    path = "/admin/workspaces"
    tags = ["Admin"]
    guards = [requires_scope("admin")]

    @get("/{workspace:str}/users", operation_id="v1WorkspaceUsers", opt={"error_shape": UsersError, **raises(NotFound)},
         **COMMON)
    def list_members(self, ctx: Context, request: Request, workspace: IdPath) -> UsersAnswer:
        users.require_multi_user(ctx)
        return UsersAnswer(members_out(ws.list_members(ctx, request.user, int(workspace))))

    @post("/{workspace:str}/update-users", operation_id="v1WorkspaceUpdateUsers", status_code=200,
          opt={"error_shape": SuccessError, **raises(NotFound)}, **COMMON)
    def update_users(self, ctx: Context, request: Request, workspace: IdPath, data: UserIdsBody) -> SuccessAnswer:
        """Deprecated upstream: replaces the whole membership list."""
        users.require_multi_user(ctx)
        ws.set_members(ctx, ws.SetMembers(principal=request.user, correlation_id=request_id(request),
                                          workspace_id=int(workspace), user_ids=data.userIds, replace=True))
        return SuccessAnswer(True, None)

    @post("/{workspace:str}/manage-users", operation_id="v1WorkspaceManageUsers", status_code=200,
          opt={"error_shape": MembersError, **raises(NotFound)}, **COMMON)
    def manage_users(self, ctx: Context, request: Request, workspace: SlugPath, data: UserIdsBody) -> MembersAnswer:
        users.require_multi_user(ctx)
        members = ws.set_members(ctx, ws.SetMembers(principal=request.user, correlation_id=request_id(request),
                                                    slug=workspace, user_ids=data.userIds, replace=data.reset))
        return MembersAnswer(True, None, members_out(members))

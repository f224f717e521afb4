"""Workspaces over /api/v1, with AnythingLLM's paths, bodies and response shapes."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, delete, get, post
from litestar.params import Parameter
from msgspec import UNSET, Meta, UnsetType

from api.auth import requires_scope
from api.presenters import parse_id, request_id
from application import users, workspaces as ws
from application.ledger import Context
from application.search import vector_search
from domain.errors import DomainError, NotFound

COMMON = {"sync_to_thread": True}
Slug = Annotated[str, Parameter(description="workspace slug", max_length=200)]
Text = Annotated[str, Meta(max_length=100_000)]
Short = Annotated[str, Meta(max_length=255)]


class WorkspaceBody(msgspec.Struct):
    """Writable workspace fields; what is left out stays as it is (null resets a field)."""

    name: Short | None | UnsetType = UNSET
    similarityThreshold: float | None | UnsetType = UNSET
    openAiTemp: float | None | UnsetType = UNSET
    openAiHistory: int | None | UnsetType = UNSET
    openAiPrompt: Text | None | UnsetType = UNSET
    queryRefusalResponse: Text | None | UnsetType = UNSET
    chatMode: Short | None | UnsetType = UNSET
    topN: int | None | UnsetType = UNSET
    chatProvider: Short | None | UnsetType = UNSET
    chatModel: Short | None | UnsetType = UNSET
    agentProvider: Short | None | UnsetType = UNSET
    agentModel: Short | None | UnsetType = UNSET
    vectorSearchMode: Short | None | UnsetType = UNSET
    router_id: int | None | UnsetType = UNSET
    pfpFilename: Short | None | UnsetType = UNSET

    def given(self) -> dict[str, Any]:
        return {f: v for f in self.__struct_fields__ if (v := getattr(self, f)) is not UNSET}


def workspace_out(row: ws.WorkspaceRow, **extra: Any) -> dict[str, Any]:
    """Upstream's workspace row: id, name, slug, vectorTag, the settings, createdAt/lastUpdatedAt."""
    return {"id": row.id, "name": row.name, "slug": row.slug, "vectorTag": None, "createdAt": row.created_at,
            "lastUpdatedAt": row.updated_at, **row.settings, **extra}


def document_link_out(d: dict[str, Any]) -> dict[str, Any]:
    """A workspace_documents row as upstream returns it (`metadata` is a JSON string there)."""
    return {"id": d["id"], "docId": d["doc_id"], "filename": d["filename"], "docpath": d["docpath"],
            "workspaceId": None, "metadata": d["metadata"] or "{}", "pinned": bool(d["pinned"]),
            "watched": False, "createdAt": d["created_at"], "lastUpdatedAt": d["updated_at"], "chunks": d["chunks"]}


def _with_documents(ctx: Context, row: ws.WorkspaceRow) -> dict[str, Any]:
    docs = [{**document_link_out(d), "workspaceId": row.id} for d in ws.workspace_documents(ctx, row.id)]
    return workspace_out(row, documents=docs, threads=[])


class WorkspaceController(Controller):
    path = "/"
    tags = ["Workspaces"]

    @post("/workspace/new", operation_id="v1CreateWorkspace", status_code=200, **COMMON)
    def create(self, ctx: Context, request: Request, data: WorkspaceBody) -> Response[dict[str, Any]]:
        """Create a workspace; the slug comes from the name (a suffix is added on collision)."""
        fields = data.given()
        try:
            row = ws.create_workspace(ctx, ws.CreateWorkspace(
                principal=request.user, correlation_id=request_id(request), name=fields.pop("name", None),
                settings=fields))
        except DomainError as e:
            return Response({"workspace": None, "message": str(e)}, status_code=e.status)
        return Response({"workspace": workspace_out(row), "message": None})

    @get("/workspaces", operation_id="v1ListWorkspaces", guards=[requires_scope("read")], **COMMON)
    def list_all(self, ctx: Context, request: Request) -> dict[str, Any]:
        return {"workspaces": [workspace_out(r, threads=[]) for r in ws.list_workspaces(ctx, request.user)]}

    @get("/workspace/{slug:str}", operation_id="v1GetWorkspace", **COMMON)
    def get_one(self, ctx: Context, request: Request, slug: Slug) -> Response[dict[str, Any]]:
        """`workspace` is an array, as upstream: empty (200) for a slug that is unknown or not
        visible to the caller; AnythingLLM's CLI then creates its default workspace."""
        try:
            row = ws.visible_workspace(ctx, request.user, slug)
        except NotFound:
            return Response({"workspace": []})
        except DomainError as e:
            return Response({"workspace": [], "error": str(e)}, status_code=e.status)
        return Response({"workspace": [_with_documents(ctx, row)]})

    @delete("/workspace/{slug:str}", operation_id="v1DeleteWorkspace", status_code=200, **COMMON)
    def remove(self, ctx: Context, request: Request, slug: Slug) -> Response[bytes]:
        ws.delete_workspace(ctx, ws.DeleteWorkspace(principal=request.user, correlation_id=request_id(request),
                                                    slug=slug))
        return Response(b"", media_type="text/plain")

    @post("/workspace/{slug:str}/update", operation_id="v1UpdateWorkspace", status_code=200, **COMMON)
    def update(self, ctx: Context, request: Request, slug: Slug, data: WorkspaceBody) -> Response[dict[str, Any]]:
        try:
            row, changed = ws.update_workspace(ctx, ws.UpdateWorkspace(
                principal=request.user, correlation_id=request_id(request), slug=slug, changes=data.given()))
        except DomainError as e:
            return Response({"workspace": None, "message": str(e)}, status_code=e.status)
        return Response({"workspace": workspace_out(row), "message": None if changed else "No valid fields to update!"})

    @post("/workspace/{slug:str}/update-embeddings", operation_id="v1UpdateEmbeddings", status_code=200, **COMMON)
    def update_embeddings(self, ctx: Context, request: Request, slug: Slug, data: EmbeddingsBody) -> Response[dict[str, Any]]:
        """Embed (`adds`) or unembed (`deletes`) documents by docpath. Unlike upstream,
        documents that could not be embedded are listed in `failedToEmbed` with the reason."""
        try:
            row, failures = ws.update_embeddings(ctx, ws.UpdateEmbeddings(
                principal=request.user, correlation_id=request_id(request), slug=slug,
                adds=data.adds, deletes=data.deletes))
        except DomainError as e:
            return Response({"workspace": None, "message": str(e)}, status_code=e.status)
        return Response({"workspace": _with_documents(ctx, row), "message": None,
                         "failedToEmbed": [f.docpath for f in failures],
                         "errors": [{"docpath": f.docpath, "error": f.error} for f in failures]})

    @post("/workspace/{slug:str}/update-pin", operation_id="v1UpdatePin", status_code=200, **COMMON)
    def update_pin(self, ctx: Context, request: Request, slug: Slug, data: PinBody) -> Response[dict[str, Any]]:
        try:
            ws.update_pin(ctx, ws.UpdatePin(principal=request.user, correlation_id=request_id(request), slug=slug,
                                            docpath=data.docPath, pinned=data.pinStatus))
        except DomainError as e:
            return Response({"message": str(e), "error": str(e)}, status_code=e.status)
        return Response({"message": "Pin status updated successfully"})

    @post("/workspace/{slug:str}/vector-search", operation_id="v1VectorSearch", status_code=200, **COMMON)
    def search(self, ctx: Context, request: Request, slug: Slug, data: SearchBody) -> Response[dict[str, Any]]:
        """Cosine search: `score` is the similarity, `distance = 1 - score`; hits below
        `scoreThreshold` (default: the workspace's similarityThreshold) are left out."""
        try:
            hits = vector_search(ctx, request.user, slug, data.query, data.topN, data.scoreThreshold)
        except DomainError as e:
            return Response({"results": [], "message": str(e), "error": str(e)}, status_code=e.status)
        if not hits and ctx.content.index.count(ws.get_workspace(ctx, slug).aggregate_id) == 0:
            return Response({"results": [], "message": "No embeddings found for this workspace."})
        return Response({"results": [msgspec.to_builtins(h) for h in hits]})


class EmbeddingsBody(msgspec.Struct):
    adds: Annotated[list[Annotated[str, Meta(max_length=1000)]], Meta(max_length=10_000)] = []
    deletes: Annotated[list[Annotated[str, Meta(max_length=1000)]], Meta(max_length=10_000)] = []


class PinBody(msgspec.Struct):
    docPath: Annotated[str, Meta(max_length=1000)]
    pinStatus: bool = False


class SearchBody(msgspec.Struct):
    query: Annotated[str, Meta(max_length=20_000)] | None = None
    topN: int | None = None
    scoreThreshold: float | None = None


class UserIdsBody(msgspec.Struct):
    userIds: Annotated[list[int], Meta(max_length=10_000)]
    reset: bool = False


class WorkspaceMembersController(Controller):
    """Membership (multi-user mode; admins and managers). `{workspace}` is the numeric id on
    the first two routes and the slug on manage-users, as upstream."""

    path = "/admin/workspaces"
    tags = ["Admin"]
    guards = [requires_scope("admin")]

    @get("/{workspace:str}/users", operation_id="v1WorkspaceUsers", **COMMON)
    def list_members(self, ctx: Context, request: Request, workspace: str) -> Response[dict[str, Any]]:
        users.require_multi_user(ctx)
        from application.access import check_admin_or_manager

        check_admin_or_manager(request.user)
        row = ws.get_workspace_by_id(ctx, parse_id(workspace, "workspace"))
        if row is None:
            return Response({"users": [], "error": "Workspace not found"}, status_code=404)
        return Response({"users": ws.members(ctx, row.id)})

    @post("/{workspace:str}/update-users", operation_id="v1WorkspaceUpdateUsers", status_code=200, **COMMON)
    def update_users(self, ctx: Context, request: Request, workspace: str, data: UserIdsBody) -> Response[dict[str, Any]]:
        """Deprecated upstream: replaces the whole membership list."""
        users.require_multi_user(ctx)
        try:
            ws.set_members(ctx, ws.SetMembers(principal=request.user, correlation_id=request_id(request),
                                              workspace_id=parse_id(workspace, "workspace"),
                                              user_ids=data.userIds, replace=True))
        except DomainError as e:
            return Response({"success": False, "error": str(e)}, status_code=e.status)
        return Response({"success": True, "error": None})

    @post("/{workspace:str}/manage-users", operation_id="v1WorkspaceManageUsers", status_code=200, **COMMON)
    def manage_users(self, ctx: Context, request: Request, workspace: str, data: UserIdsBody) -> Response[dict[str, Any]]:
        users.require_multi_user(ctx)
        try:
            members = ws.set_members(ctx, ws.SetMembers(principal=request.user, correlation_id=request_id(request),
                                                        slug=workspace, user_ids=data.userIds, replace=data.reset))
        except DomainError as e:
            row = ws.get_workspace(ctx, workspace)
            return Response({"success": False, "error": str(e), "users": ws.members(ctx, row.id) if row else []},
                            status_code=e.status)
        return Response({"success": True, "error": None, "users": members})


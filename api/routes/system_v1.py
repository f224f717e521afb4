"""/api/v1/system, the OpenAI-compatible embeddings and vector stores, and embed widgets."""

from __future__ import annotations


from typing import Any

from litestar import Controller, Request, Response, delete, get, post

from api.errors import FORBIDDEN_RESPONSE
from api.presenters import request_id
from application import embeds, search, system
from application.ledger import Context
from domain.errors import DomainError

COMMON = {"sync_to_thread": True, "responses": FORBIDDEN_RESPONSE}


class SystemV1Controller(Controller):
    path = "/system"
    tags = ["System Settings"]

    @get("/", operation_id="v1SystemSettings", **COMMON)
    def settings(self, ctx: Context, request: Request) -> dict[str, Any]:
        """Provider settings: public values in plain text, secrets only as `true`/`false`."""
        return {"settings": system.current_settings(ctx, request.user)}

    @get("/vector-count", operation_id="v1VectorCount", **COMMON)
    def vector_count(self, ctx: Context, request: Request) -> dict[str, Any]:
        return {"vectorCount": search.vector_count(ctx, request.user)}

    @post("/update-env", operation_id="v1UpdateEnv", status_code=200, **COMMON)
    def update_env(self, ctx: Context, request: Request, data: dict[str, Any]) -> Response[dict[str, Any]]:
        """Admins only. Secret values (API keys) go to the secrets store and never into an event
        or a response; the event records which key changed and who changed it."""
        try:
            values, error = system.update_env(ctx, request.user, request_id(request), data)
        except DomainError as e:
            return Response({"newValues": {}, "error": str(e)}, status_code=e.status)
        return Response({"newValues": values, "error": error or False})

    @get("/env-dump", operation_id="v1EnvDump", **COMMON)
    def env_dump(self, ctx: Context, request: Request) -> Response[bytes]:
        """Requires an admin key (upstream's needs none). Settings are already persisted as
        events and in the secrets store, so there is nothing to write: 200, empty body."""
        from application.access import check_admin

        check_admin(request.user)
        return Response(b"", media_type="text/plain")


class OpenAiController(Controller):
    path = "/openai"
    tags = ["OpenAI Compatible Endpoints"]

    @post("/embeddings", operation_id="v1OpenAiEmbeddings", status_code=200, **COMMON)
    def embeddings(self, ctx: Context, request: Request, data: dict[str, Any]) -> Response[dict[str, Any]]:
        """`input` (or legacy `inputs`): a string or a list of strings."""
        try:
            vectors, tokens = search.embed_inputs(ctx, request.user, data.get("input", data.get("inputs")))
        except DomainError as e:
            return Response({"error": str(e)}, status_code=e.status)
        model = ctx.content.embedder.model_name
        return Response({"object": "list", "model": model,
                         "data": [{"object": "embedding", "embedding": v, "index": i} for i, v in enumerate(vectors)],
                         "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})

    @get("/vector_stores", operation_id="v1OpenAiVectorStores", **COMMON)
    def vector_stores(self, ctx: Context, request: Request) -> dict[str, Any]:
        stores = search.vector_stores(ctx, request.user)
        return {"first_id": stores[0]["id"] if stores else None, "last_id": stores[-1]["id"] if stores else None,
                "data": stores, "has_more": False}


def embed_out(e: embeds.EmbedRow) -> dict[str, Any]:
    return {"id": e.id, "uuid": e.uuid, "enabled": e.settings.get("enabled", True),
            "chat_mode": e.settings.get("chat_mode"), "createdAt": e.created_at,
            "workspace": {"id": e.workspace_id, "name": e.workspace_name, "slug": e.workspace_slug},
            "chat_count": e.chat_count, **{k: v for k, v in e.settings.items() if k not in ("enabled", "chat_mode")}}


class EmbedController(Controller):
    """Embed widgets (admins only). Unlike upstream, `allowlist_domains` of the wrong type is
    refused instead of silently opening the embed to every origin."""

    path = "/embed"
    tags = ["Embed"]

    @get("/", operation_id="v1ListEmbeds", **COMMON)
    def list_embeds(self, ctx: Context, request: Request) -> dict[str, Any]:
        return {"embeds": [embed_out(e) for e in embeds.list_embeds(ctx, request.user)]}

    @post("/new", operation_id="v1CreateEmbed", status_code=200, **COMMON)
    def create(self, ctx: Context, request: Request, data: dict[str, Any]) -> Response[dict[str, Any]]:
        try:
            embed = embeds.create_embed(ctx, request.user, request_id(request), data)
        except DomainError as e:
            return Response({"embed": None, "error": str(e)}, status_code=e.status)
        return Response({"embed": embed_out(embed), "error": None})

    @post("/{embed_uuid:str}", operation_id="v1UpdateEmbed", status_code=200, **COMMON)
    def update(self, ctx: Context, request: Request, embed_uuid: str, data: dict[str, Any]) -> Response[dict[str, Any]]:
        try:
            embeds.update_embed(ctx, request.user, request_id(request), embed_uuid, data)
        except DomainError as e:
            return Response({"success": False, "error": str(e)}, status_code=e.status)
        return Response({"success": True, "error": None})

    @delete("/{embed_uuid:str}", operation_id="v1DeleteEmbed", status_code=200, **COMMON)
    def remove(self, ctx: Context, request: Request, embed_uuid: str) -> Response[dict[str, Any]]:
        try:
            embeds.delete_embed(ctx, request.user, request_id(request), embed_uuid)
        except DomainError as e:
            return Response({"success": False, "error": str(e)}, status_code=e.status)
        return Response({"success": True, "error": None})

    @get("/{embed_uuid:str}/chats", operation_id="v1EmbedChats", **COMMON)
    def chats(self, ctx: Context, request: Request, embed_uuid: str) -> dict[str, Any]:
        """The widget's chats, newest first (404 for an unknown embed; upstream answers [])."""
        return {"chats": embeds.embed_chats(ctx, request.user, embed_uuid, None)}

    @get("/{embed_uuid:str}/chats/{session_uuid:str}", operation_id="v1EmbedSessionChats", **COMMON)
    def session_chats(self, ctx: Context, request: Request, embed_uuid: str, session_uuid: str) -> dict[str, Any]:
        return {"chats": embeds.embed_chats(ctx, request.user, embed_uuid, session_uuid)}



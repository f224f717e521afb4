"""Embed widgets over /api/v1/embed (admins): their settings and their chats."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, delete, get, post

from api.presenters import request_id
from application import embeds
from application.ledger import Context
from domain.errors import DomainError

COMMON = {"sync_to_thread": True}


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

"""The public embed widget routes (no API key; the embed's allowlist and limits apply)."""

from __future__ import annotations

from typing import Any

import anyio
from litestar import Controller, Request, Response, delete, get, post

from api.presenters import request_id
from api.routes.chat import EVENT_STREAM, _json, _stream_chat
from application import embeds
from application.ledger import Context
from domain.errors import DomainError


class EmbedWidgetController(Controller):
    path = "/api/embed"
    tags = ["Embed widget"]
    opt = {"exclude_from_auth": True}

    @post("/{embed_id:str}/stream-chat", operation_id="embedStreamChat", status_code=200, media_type=EVENT_STREAM)
    async def stream_chat(self, ctx: Context, request: Request, embed_id: str, data: dict[str, Any]) -> Any:
        """`{sessionId, message, prompt?, temperature?}`; overrides only where the embed allows."""
        try:
            req = await anyio.to_thread.run_sync(lambda: embeds.widget_chat_request(
                ctx, embed_id, request.headers.get("origin"), request_id(request), data))
        except DomainError as e:
            return _json({"id": None, "type": "abort", "textResponse": None, "sources": [], "close": True,
                          "error": str(e)}, e.status)
        return await _stream_chat(ctx, req)

    @get("/{embed_id:str}/{session_id:str}", operation_id="embedHistory", sync_to_thread=True)
    def history(self, ctx: Context, request: Request, embed_id: str, session_id: str) -> Response[dict[str, Any]]:
        try:
            return Response({"history": embeds.widget_history(ctx, embed_id, request.headers.get("origin"), session_id)})
        except DomainError as e:
            return Response({"history": [], "error": str(e)}, status_code=e.status)

    @delete("/{embed_id:str}/{session_id:str}", operation_id="embedReset", status_code=200, sync_to_thread=True)
    def reset(self, ctx: Context, request: Request, embed_id: str, session_id: str) -> Response[dict[str, Any]]:
        try:
            embeds.widget_reset(ctx, embed_id, request.headers.get("origin"), session_id, request_id(request))
        except DomainError as e:
            return Response({"success": False, "error": str(e)}, status_code=e.status)
        return Response({"success": True, "error": None})

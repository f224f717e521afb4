"""The public embed widget routes (no API key; the embed's allowlist and limits apply)."""

from __future__ import annotations

from typing import Annotated, Any

import anyio
import msgspec
from litestar import Controller, Request, delete, get, post
from litestar.response import Stream
from msgspec import Meta

from api.errors import SuccessError, raises
from api.presenters import request_id
from api.presenters.chat import History, history_out
from api.routes.chat import EVENT_STREAM, _stream_chat
from api.schema import Short, Temperature
from application import chat, embeds
from application.ledger import Context


class WidgetChatBody(msgspec.Struct):
    sessionId: Annotated[str, Meta(min_length=1, max_length=255)]
    message: Annotated[str, Meta(max_length=chat.MAX_MESSAGE_CHARS)] | None = None
    prompt: Annotated[str, Meta(max_length=100_000)] | None = None
    temperature: Temperature | None = None
    model: Short | None = None  # upstream's model override; not honoured (one model per workspace)


class Done(msgspec.Struct):
    success: bool
    error: None = None


class HistoryError(msgspec.Struct):
    """`{"history": [], "error": "..."}`: the widget history route's error body."""

    history: list[Any]
    error: str

    @classmethod
    def of(cls, message: str, status: int) -> HistoryError:
        return cls([], message)


class StreamAbort(msgspec.Struct):
    """The widget's abort chunk, sent as JSON when a chat is refused before its stream starts."""

    id: None
    type: str
    textResponse: None
    sources: list[Any]
    close: bool
    error: str

    @classmethod
    def of(cls, message: str, status: int) -> StreamAbort:
        return cls(None, "abort", None, [], True, message)


WIDGET_ERRORS = (403, 404, 429)


class EmbedWidgetController(Controller):
    path = "/api/embed"
    tags = ["Embed widget"]
    opt = {"exclude_from_auth": True}

    @post("/{embed_id:str}/stream-chat", operation_id="embedStreamChat", status_code=200, media_type=EVENT_STREAM,
          opt={"error_shape": StreamAbort, **raises(*WIDGET_ERRORS)})
    async def stream_chat(self, ctx: Context, request: Request, embed_id: Short, data: WidgetChatBody) -> Stream:
        """`{sessionId, message, prompt?, temperature?}`; overrides only where the embed allows.
        A refusal (unknown or disabled embed, origin not allowed, a limit reached) is a JSON abort.
        The per-session and per-day limits are reserved before the chat runs, so they hold
        under parallel requests."""
        body = embeds.WidgetChat(data.sessionId, data.message, data.prompt, data.temperature)
        req = await anyio.to_thread.run_sync(lambda: embeds.widget_chat_request(
            ctx, embed_id, request.headers.get("origin"), request_id(request), body))
        return await _stream_chat(ctx, req)

    @get("/{embed_id:str}/{session_id:str}", operation_id="embedHistory", sync_to_thread=True,
         opt={"error_shape": HistoryError, **raises(*WIDGET_ERRORS)})
    def history(self, ctx: Context, request: Request, embed_id: Short, session_id: Short) -> History:
        return history_out(embeds.widget_history(ctx, embed_id, request.headers.get("origin"), session_id))

    @delete("/{embed_id:str}/{session_id:str}", operation_id="embedReset", status_code=200, sync_to_thread=True,
            opt={"error_shape": SuccessError, **raises(*WIDGET_ERRORS)})
    def reset(self, ctx: Context, request: Request, embed_id: Short, session_id: Short) -> Done:
        embeds.widget_reset(ctx, embed_id, request.headers.get("origin"), session_id, request_id(request))
        return Done(True)

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
from api.presenters.chat import History, WidgetAbort, history_out
from api.routes.chat import EVENT_STREAM, stream_chat_reply
from api.schema import Short, ShortPath, Temperature
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


WIDGET_ERRORS = (403, 404, 429)


class EmbedWidgetController(Controller):
    path = "/api/embed"
    tags = ["Embed widget"]
    opt = {"exclude_from_auth": True}

    @post("/{embed_id:str}/stream-chat", operation_id="embedStreamChat", status_code=200, media_type=EVENT_STREAM,
          opt={"error_shape": WidgetAbort, **raises(*WIDGET_ERRORS)})
    async def stream_chat(self, ctx: Context, request: Request, embed_id: ShortPath, data: WidgetChatBody) -> Stream:
        """`{sessionId, message, prompt?, temperature?}`; overrides only where the embed allows.
        A refusal (unknown or disabled embed, origin not allowed, a limit reached) is a JSON abort.
        The per-session and per-day limits are reserved before the chat runs, so they hold
        under parallel requests."""
        cmd = embeds.ReserveWidgetChat(correlation_id=request_id(request), public_uuid=embed_id,
                                       origin=request.headers.get("origin"), session_id=data.sessionId,
                                       message=data.message, prompt=data.prompt, temperature=data.temperature)
        chat_cmd = await anyio.to_thread.run_sync(embeds.reserve_widget_chat, ctx, cmd)
        return await stream_chat_reply(ctx, chat_cmd)

    @get("/{embed_id:str}/{session_id:str}", operation_id="embedHistory", sync_to_thread=True,
         opt={"error_shape": HistoryError, **raises(*WIDGET_ERRORS)})
    def history(self, ctx: Context, request: Request, embed_id: ShortPath, session_id: ShortPath) -> History:
        return history_out(embeds.widget_history(ctx, embed_id, request.headers.get("origin"), session_id))

    @delete("/{embed_id:str}/{session_id:str}", operation_id="embedReset", status_code=200, sync_to_thread=True,
            opt={"error_shape": SuccessError, **raises(*WIDGET_ERRORS)})
    def reset(self, ctx: Context, request: Request, embed_id: ShortPath, session_id: ShortPath) -> Done:
        embeds.reset_widget_session(ctx, embeds.ResetWidgetSession(
            correlation_id=request_id(request), public_uuid=embed_id, origin=request.headers.get("origin"),
            session_id=session_id))
        return Done(True)

"""Chat over /api/v1: workspace and thread chats (sync and SSE), history, threads, chat logs
and exports. The OpenAI-compatible chat completions live in `openai_v1.py`."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

import anyio
import msgspec
from litestar import Controller, Request, Response, delete, get, post
from litestar.openapi.spec import OpenAPIMediaType, Operation
from litestar.params import Parameter
from litestar.response import Stream
from msgspec import Meta

from api.errors import ErrorBody, raises
from api.presenters import request_id
from api.presenters.chat import (
    FORBIDDEN, ChatAbort, ChatReply, History, HistoryError, MessageError, ThreadAnswer, ThreadError, ThreadList, abort,
    chat_reply, history_out, immediate_frames, immediate_reply, stream_frames, thread_out,
)
from api.schema import (
    JS_SAFE_MAX, Flag, LimitQuery, PageIndex, PublicId, SessionQuery, Short, SlugPath, ThreadSlugPath, flag,
)
from api.sse import sse
from application import chat, history, threads
from application.ledger import Context

SYNC = {"sync_to_thread": True}
# Litestar's Stream takes the route's media type over its own, so stream routes declare it;
# their JSON answers (refusals, validation errors) are Responses, which keep their own.
EVENT_STREAM = "text/event-stream"
CHAT_ERRORS = {"error_shape": ChatAbort, **raises(404, 502, 504)}


class AttachmentIn(msgspec.Struct):
    """An image (base64 or a data URL) or an `application/anythingllm-document` file."""

    contentString: Annotated[str, Meta(max_length=chat.MAX_ATTACHMENT_BYTES * 4 // 3 + 100)]
    name: Short | None = None
    mime: Annotated[str, Meta(max_length=100)] | None = None


class ChatBody(msgspec.Struct):
    message: Annotated[str, Meta(max_length=chat.MAX_MESSAGE_CHARS)] | None = None
    mode: Annotated[str, Meta(max_length=20)] | None = None  # checked by the use case, with upstream's message
    sessionId: Short | Annotated[int, Meta(ge=-(2**53 - 1), le=2**53 - 1)] | None = None
    attachments: Annotated[list[AttachmentIn], Meta(max_length=chat.MAX_ATTACHMENTS)] | None = None
    reset: Flag = False
    userId: PublicId | None = None


def _request(request: Request, slug: str, data: ChatBody, thread_slug: str | None = None) -> chat.SendChat:
    attachments = None if data.attachments is None else [
        chat.Attachment(a.name or "attachment", a.mime or "", a.contentString) for a in data.attachments]
    return chat.SendChat(
        principal=request.user, correlation_id=request_id(request), slug=slug, message=data.message, mode=data.mode,
        session_id=None if thread_slug or data.sessionId is None else str(data.sessionId), attachments=attachments,
        reset=bool(flag(data.reset)), thread_slug=thread_slug, user_id=data.userId if thread_slug else None)


async def _chat(ctx: Context, req: chat.SendChat) -> ChatReply:
    """A refusal or a provider failure is raised and answered as upstream's abort object."""
    prepared = await anyio.to_thread.run_sync(chat.send_chat, ctx, req)
    if isinstance(prepared, chat.Immediate):
        return immediate_reply(prepared)
    return chat_reply(await anyio.to_thread.run_sync(chat.answer, ctx, prepared))


async def stream_chat_reply(ctx: Context, req: chat.SendChat) -> Stream:
    """Refusals answer JSON (the route's error shape) before any stream starts, as upstream."""
    prepared = await anyio.to_thread.run_sync(chat.send_chat, ctx, req)
    if isinstance(prepared, chat.Immediate):
        frames = immediate_frames(prepared)
        return sse(lambda cancel: iter(frames))
    response_id = str(uuid.uuid4())
    return sse(lambda cancel: stream_frames(response_id, chat.stream(ctx, prepared, cancel)),
               on_error=lambda e: abort("An error occurred while streaming the response.", response_id))


class ThreadBody(msgspec.Struct):
    name: Short | None = None
    slug: Short | None = None
    userId: PublicId | None = None


class RenameBody(msgspec.Struct):
    name: Short


THREAD_ERRORS = {"error_shape": ThreadError, **raises(404)}


class ChatController(Controller):
    path = "/workspace"
    tags = ["Workspaces"]

    @post("/{slug:str}/chat", operation_id="v1Chat", responses=FORBIDDEN, status_code=200, opt=CHAT_ERRORS)
    async def chat(self, ctx: Context, request: Request, slug: SlugPath, data: ChatBody) -> ChatReply:
        """Chat as the key's user. `mode`: chat, query or automatic; `sessionId` partitions
        history; `reset` clears exactly this user's, thread's and session's history."""
        return await _chat(ctx, _request(request, slug, data))

    @post("/{slug:str}/stream-chat", operation_id="v1StreamChat", responses=FORBIDDEN, status_code=200, media_type=EVENT_STREAM,
          opt=CHAT_ERRORS)
    async def stream_chat(self, ctx: Context, request: Request, slug: SlugPath, data: ChatBody) -> Stream:
        """SSE framed as AnythingLLM's: `data: {json}` chunks, then `finalizeResponseStream`."""
        return await stream_chat_reply(ctx, _request(request, slug, data))

    @get("/{slug:str}/chats", operation_id="v1WorkspaceChats", responses=FORBIDDEN, opt={"error_shape": HistoryError, **raises(404)},
         **SYNC)
    def chats(self, ctx: Context, request: Request, slug: SlugPath, apiSessionId: SessionQuery = None,
              limit: LimitQuery = None, orderBy: Literal["asc", "desc"] | None = None) -> History:
        """The caller's own history (upstream shows every user's, and reset chats too)."""
        return history_out(history.workspace_history(ctx, request.user, slug, apiSessionId, limit, orderBy))

    @get("/{slug:str}/threads", operation_id="v1WorkspaceThreads", responses=FORBIDDEN, opt={"error_shape": ThreadError, **raises(404)},
         **SYNC)
    def list_threads(self, ctx: Context, request: Request, slug: SlugPath) -> ThreadList:
        """Beyond upstream: the caller's threads in the workspace, with their names."""
        return ThreadList([thread_out(t) for t in threads.list_threads(ctx, request.user, slug)])

    @post("/{slug:str}/thread/new", operation_id="v1NewThread", responses=FORBIDDEN, status_code=200, opt=THREAD_ERRORS, **SYNC)
    def new_thread(self, ctx: Context, request: Request, slug: SlugPath, data: ThreadBody | None = None) -> ThreadAnswer:
        data = data or ThreadBody()
        row = threads.create_thread(ctx, threads.CreateThread(
            principal=request.user, correlation_id=request_id(request), workspace_slug=slug, name=data.name,
            slug=data.slug, user_id=data.userId))
        return ThreadAnswer(thread_out(row))

    @post("/{slug:str}/thread/{thread_slug:str}/update", operation_id="v1UpdateThread", responses=FORBIDDEN, status_code=200,
          opt=THREAD_ERRORS, **SYNC)
    def update_thread(self, ctx: Context, request: Request, slug: SlugPath, thread_slug: ThreadSlugPath,
                      data: RenameBody) -> ThreadAnswer:
        """Needs the `write` scope."""
        row = threads.update_thread(ctx, threads.UpdateThread(
            principal=request.user, correlation_id=request_id(request), workspace_slug=slug, slug=thread_slug,
            name=data.name))
        return ThreadAnswer(thread_out(row))

    @delete("/{slug:str}/thread/{thread_slug:str}", operation_id="v1DeleteThread", responses=FORBIDDEN, status_code=200,
            media_type="text/plain", opt=THREAD_ERRORS, **SYNC)
    def delete_thread(self, ctx: Context, request: Request, slug: SlugPath, thread_slug: ThreadSlugPath) -> bytes:
        """Needs the `write` scope. 200 with an empty body, as upstream; a thread that is not the
        caller's answers 404 like an absent one (upstream answers 200 and deletes nothing)."""
        threads.delete_thread(ctx, threads.DeleteThread(principal=request.user, correlation_id=request_id(request),
                                                      workspace_slug=slug, slug=thread_slug))
        return b""

    @get("/{slug:str}/thread/{thread_slug:str}/chats", operation_id="v1ThreadChats", responses=FORBIDDEN,
         opt={"error_shape": HistoryError, **raises(404)}, **SYNC)
    def thread_chats(self, ctx: Context, request: Request, slug: SlugPath, thread_slug: ThreadSlugPath) -> History:
        return history_out(history.thread_history(ctx, request.user, slug, thread_slug))

    @post("/{slug:str}/thread/{thread_slug:str}/chat", operation_id="v1ThreadChat", responses=FORBIDDEN, status_code=200, opt=CHAT_ERRORS)
    async def thread_chat(self, ctx: Context, request: Request, slug: SlugPath, thread_slug: ThreadSlugPath,
                          data: ChatBody) -> ChatReply:
        return await _chat(ctx, _request(request, slug, data, thread_slug))

    @post("/{slug:str}/thread/{thread_slug:str}/stream-chat", operation_id="v1ThreadStreamChat", responses=FORBIDDEN, status_code=200,
          media_type=EVENT_STREAM, opt=CHAT_ERRORS)
    async def threadstream_chat_reply(self, ctx: Context, request: Request, slug: SlugPath, thread_slug: ThreadSlugPath,
                                 data: ChatBody) -> Stream:
        return await stream_chat_reply(ctx, _request(request, slug, data, thread_slug))


class ChatLogsError(msgspec.Struct):
    """`{"chats": [], "hasPages": false, "error": "..."}`: the chat logs route's error body."""

    chats: list[Any]
    hasPages: bool
    error: str

    @classmethod
    def of(cls, message: str, status: int) -> ChatLogsError | ErrorBody:
        return ErrorBody(message) if status == 403 else cls([], False, message)


class ChatLogsBody(msgspec.Struct):
    offset: PageIndex | None = None


class ChatLogs(msgspec.Struct):
    chats: list[dict[str, Any]]
    hasPages: bool


EXPORT_TYPES = {"json": "application/json", "jsonl": "application/jsonl", "csv": "text/csv",
                "jsonAlpaca": "application/json"}


@dataclass
class ExportOperation(Operation):
    """The export answers the content type of the format asked for: document each."""

    def __post_init__(self) -> None:
        ok = (self.responses or {}).get("200")
        if ok is not None and not isinstance(ok, dict) and getattr(ok, "content", None) is not None:
            records = {"type": "array", "items": {"type": "object"}}  # json: chats; jsonAlpaca: instructions
            for media in EXPORT_TYPES.values():
                schema = records if media == "application/json" else {"type": "string"}
                ok.content[media] = OpenAPIMediaType(schema=schema)  # type: ignore[arg-type]
            ok.content.pop("text/plain", None)


class ChatLogsController(Controller):
    path = "/"
    tags = ["Admin"]

    @post("/admin/workspace-chats", operation_id="v1AdminWorkspaceChats", responses=FORBIDDEN, status_code=200,
          opt={"error_shape": ChatLogsError}, **SYNC)
    def workspace_chats(self, ctx: Context, request: Request, data: ChatLogsBody | None = None) -> ChatLogs:
        """Every chat, newest first, 20 a page (`offset` is the page); admins and managers."""
        chats, more = history.admin_chats(ctx, request.user, (data or ChatLogsBody()).offset)
        return ChatLogs(chats, more)

    @get("/system/export-chats", operation_id="v1ExportChats", responses=FORBIDDEN, media_type="text/plain",
         operation_class=ExportOperation, opt={"error_shape": MessageError}, **SYNC)
    def export_chats(self, ctx: Context, request: Request,
                     type: Annotated[Literal["json", "jsonl", "csv", "jsonAlpaca"],
                                     Parameter(description="the export format")] = "jsonl",
                     after: Annotated[int | None, Parameter(
                         ge=1, le=JS_SAFE_MAX,
                         description="only chats recorded after this chat (the last id of the previous"
                                     " export); 400 when it is no longer in the log")] = None,
                     since: Annotated[datetime | None, Parameter(
                         description="only chats sent at or after this ISO 8601 time (UTC when no offset),"
                                     " from year 1 to 9999 in UTC")] = None,
                     ) -> Response[str]:
        """Admins and managers; oldest first. `after` and `since` (ledgerllm's, both optional) let an
        archive follow by cursor. CSV cells a spreadsheet would run as a formula are defused."""
        return Response(history.export_chats(ctx, request.user, type, after, since), media_type=EXPORT_TYPES[type])

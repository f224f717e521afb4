"""Chat over /api/v1: workspace and thread chats (sync and SSE), history, threads, chat logs
and exports, and the OpenAI-compatible models and chat completions."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Annotated, Any

import anyio
import msgspec
from litestar import Controller, Request, Response, delete, get, post
from litestar.params import Parameter
from msgspec import Meta

from api.presenters import request_id
from api.sse import sse
from application import chat, history, threads
from application.ledger import Context
from application.workspaces import list_workspaces
from domain.errors import DomainError
from domain.timefmt import unix

COMMON: dict[str, object] = {}
SYNC = {"sync_to_thread": True, **COMMON}
# Litestar's Stream takes the route's media type over its own, so stream routes declare it;
# their JSON answers (validation errors) are Responses, which keep their own.
EVENT_STREAM = "text/event-stream"
Slug = Annotated[str, Parameter(max_length=200)]


class ChatBody(msgspec.Struct):
    message: Annotated[str, Meta(max_length=2_000_000)] | None = None
    mode: str | None = None
    sessionId: Annotated[str, Meta(max_length=255)] | int | None = None
    attachments: list[dict[str, Any]] | None = None
    reset: bool = False
    userId: int | None = None


def _request(request: Request, slug: str, data: ChatBody, thread_slug: str | None = None) -> chat.ChatRequest:
    return chat.ChatRequest(
        principal=request.user, correlation_id=request_id(request), slug=slug, message=data.message, mode=data.mode,
        session_id=None if thread_slug else data.sessionId, attachments=data.attachments, reset=data.reset,
        thread_slug=thread_slug, user_id=data.userId if thread_slug else None)


async def _chat(ctx: Context, req: chat.ChatRequest) -> Response[dict[str, Any]]:
    try:
        prepared = await anyio.to_thread.run_sync(chat.prepare, ctx, req)
        if isinstance(prepared, chat.Immediate):
            return Response(chat.immediate_response(prepared))
        return Response(await anyio.to_thread.run_sync(chat.answer, ctx, prepared))
    except DomainError as e:
        return Response(chat.abort(str(e)), status_code=e.status)


def _json(body: Any, status: int = 200) -> Response[Any]:
    """A JSON answer from a stream route (whose declared media type is the event stream)."""
    return Response(body, status_code=status, media_type="application/json")


async def _stream_chat(ctx: Context, req: chat.ChatRequest) -> Any:
    """Validation errors answer JSON before any stream starts, as upstream."""
    try:
        prepared = await anyio.to_thread.run_sync(chat.prepare, ctx, req)
    except DomainError as e:
        return _json(chat.abort(str(e)), e.status)
    if isinstance(prepared, chat.Immediate):
        body = {**chat.immediate_response(prepared), "close": True}
        return sse(lambda cancel: iter([body]))
    return sse(lambda cancel: chat.stream(ctx, prepared, cancel),
               on_error=lambda e: chat.abort("An error occurred while streaming the response."))


class ChatController(Controller):
    path = "/workspace"
    tags = ["Workspaces"]

    @post("/{slug:str}/chat", operation_id="v1Chat", status_code=200, **COMMON)
    async def chat(self, ctx: Context, request: Request, slug: Slug, data: ChatBody) -> Response[dict[str, Any]]:
        """Chat as the key's user. `mode`: chat, query or automatic; `sessionId` partitions
        history; `reset` clears exactly this user's, thread's and session's history."""
        return await _chat(ctx, _request(request, slug, data))

    @post("/{slug:str}/stream-chat", operation_id="v1StreamChat", status_code=200, media_type=EVENT_STREAM, **COMMON)
    async def stream_chat(self, ctx: Context, request: Request, slug: Slug, data: ChatBody) -> Any:
        """SSE framed as AnythingLLM's: `data: {json}` chunks, then `finalizeResponseStream`."""
        return await _stream_chat(ctx, _request(request, slug, data))

    @get("/{slug:str}/chats", operation_id="v1WorkspaceChats", **SYNC)
    def chats(self, ctx: Context, request: Request, slug: Slug, apiSessionId: str | None = None,
              limit: int | None = None, orderBy: str | None = None) -> Response[dict[str, Any]]:
        """The caller's own history (upstream shows every user's, and reset chats too)."""
        try:
            return Response({"history": history.workspace_history(ctx, request.user, slug, apiSessionId, limit, orderBy)})
        except DomainError as e:
            return Response({"history": [], "error": str(e), "message": str(e)}, status_code=e.status)

    @get("/{slug:str}/threads", operation_id="v1WorkspaceThreads", **SYNC)
    def list_threads(self, ctx: Context, request: Request, slug: Slug) -> dict[str, Any]:
        """Beyond upstream: the caller's threads in the workspace, with their names."""
        return {"threads": [thread_out(t) for t in threads.list_threads(ctx, request.user, slug)]}

    @post("/{slug:str}/thread/new", operation_id="v1NewThread", status_code=200, **SYNC)
    def new_thread(self, ctx: Context, request: Request, slug: Slug, data: ThreadBody | None = None) -> Response[dict[str, Any]]:
        data = data or ThreadBody()
        try:
            row = threads.create_thread(ctx, request.user, request_id(request), slug, name=data.name,
                                        slug=data.slug, user_id=data.userId)
        except DomainError as e:
            return Response({"thread": None, "message": str(e)}, status_code=e.status)
        return Response({"thread": thread_out(row), "message": None})

    @post("/{slug:str}/thread/{thread_slug:str}/update", operation_id="v1UpdateThread", status_code=200, **SYNC)
    def update_thread(self, ctx: Context, request: Request, slug: Slug, thread_slug: str,
                      data: ThreadBody) -> Response[dict[str, Any]]:
        try:
            row = threads.rename_thread(ctx, request.user, request_id(request), slug, thread_slug, data.name)
        except DomainError as e:
            return Response({"thread": None, "message": str(e)}, status_code=e.status)
        return Response({"thread": thread_out(row), "message": None})

    @delete("/{slug:str}/thread/{thread_slug:str}", operation_id="v1DeleteThread", status_code=200, **SYNC)
    def delete_thread(self, ctx: Context, request: Request, slug: Slug, thread_slug: str) -> Response[bytes]:
        threads.delete_thread(ctx, request.user, request_id(request), slug, thread_slug)
        return Response(b"", media_type="text/plain")

    @get("/{slug:str}/thread/{thread_slug:str}/chats", operation_id="v1ThreadChats", **SYNC)
    def thread_chats(self, ctx: Context, request: Request, slug: Slug, thread_slug: str) -> Response[dict[str, Any]]:
        try:
            return Response({"history": history.thread_history(ctx, request.user, slug, thread_slug)})
        except DomainError as e:
            return Response({"history": [], "message": str(e)}, status_code=e.status)

    @post("/{slug:str}/thread/{thread_slug:str}/chat", operation_id="v1ThreadChat", status_code=200, **COMMON)
    async def thread_chat(self, ctx: Context, request: Request, slug: Slug, thread_slug: str,
                          data: ChatBody) -> Response[dict[str, Any]]:
        return await _chat(ctx, _request(request, slug, data, thread_slug))

    @post("/{slug:str}/thread/{thread_slug:str}/stream-chat", operation_id="v1ThreadStreamChat", status_code=200,
          media_type=EVENT_STREAM, **COMMON)
    async def thread_stream_chat(self, ctx: Context, request: Request, slug: Slug, thread_slug: str,
                                 data: ChatBody) -> Any:
        return await _stream_chat(ctx, _request(request, slug, data, thread_slug))


class ThreadBody(msgspec.Struct):
    name: Annotated[str, Meta(max_length=255)] | None = None
    slug: Annotated[str, Meta(max_length=200)] | None = None
    userId: int | None = None


def thread_out(t: threads.ThreadRow) -> dict[str, Any]:
    return {"id": t.id, "name": t.name, "slug": t.slug, "workspace_id": t.workspace_id, "user_id": t.user_id,
            "createdAt": t.created_at, "lastUpdatedAt": t.updated_at}


class ChatLogsController(Controller):
    path = "/"
    tags = ["Admin"]

    @post("/admin/workspace-chats", operation_id="v1AdminWorkspaceChats", status_code=200, **SYNC)
    def workspace_chats(self, ctx: Context, request: Request, data: dict[str, Any] | None = None) -> Response[dict[str, Any]]:
        """Every chat, newest first, 20 a page (`offset` is the page); admins and managers."""
        try:
            chats, more = history.admin_chats(ctx, request.user, (data or {}).get("offset"))
        except DomainError as e:
            return Response({"chats": [], "hasPages": False, "error": str(e)}, status_code=e.status)
        return Response({"chats": chats, "hasPages": more})

    @get("/system/export-chats", operation_id="v1ExportChats", **SYNC)
    def export_chats(self, ctx: Context, request: Request, type: str = "jsonl") -> Response[Any]:
        try:
            body, media = history.export_chats(ctx, request.user, type)
        except DomainError as e:
            return Response({"message": str(e), "error": str(e)}, status_code=e.status)
        return Response(body, media_type=media)


class OpenAiMessage(msgspec.Struct):
    role: str
    content: str | list[dict[str, Any]] | None = None


class CompletionBody(msgspec.Struct):
    model: Annotated[str, Meta(max_length=200)]
    messages: list[OpenAiMessage]
    stream: bool = False
    temperature: float | None = None


def _openai_error(message: str, status: int, kind: str = "invalid_request_error") -> Response[dict[str, Any]]:
    return _json({"error": {"message": message, "type": kind, "code": status}}, status)


def _openai_request(request: Request, data: CompletionBody) -> chat.ChatRequest:
    """The last message is the prompt; the first system message replaces the workspace
    prompt; the other messages are the history the client keeps itself."""
    msgs = list(data.messages)
    if not msgs or msgs[-1].role != "user":
        raise chat.InvalidInput("The last message must have the role 'user'.")
    system = next((m.content for m in msgs if m.role == "system" and isinstance(m.content, str)), None)
    pairs: list[tuple[str, str]] = []
    pending: str | None = None
    for m in msgs[:-1]:
        text = m.content if isinstance(m.content, str) else " ".join(
            p.get("text", "") for p in (m.content or []) if p.get("type") == "text")
        if m.role == "user":
            pending = text
        elif m.role == "assistant":
            pairs.append((pending or "", text))
            pending = None
    last = msgs[-1].content
    text = last if isinstance(last, str) else " ".join(p.get("text", "") for p in (last or []) if p.get("type") == "text")
    images = [] if isinstance(last, str) or last is None else [
        {"name": "image", "mime": "image/png", "contentString": p["image_url"]["url"]}
        for p in last if p.get("type") == "image_url" and isinstance(p.get("image_url"), dict)]
    return chat.ChatRequest(principal=request.user, correlation_id=request_id(request), slug=data.model, message=text,
                            mode="chat", attachments=images or None, history=pairs, system_prompt=system,
                            temperature=data.temperature)


class OpenAiChatController(Controller):
    path = "/openai"
    tags = ["OpenAI Compatible Endpoints"]

    @get("/models", operation_id="v1OpenAiModels", **SYNC)
    def models(self, ctx: Context, request: Request) -> dict[str, Any]:
        """Each workspace the caller can see is a model; its id is the slug."""
        return {"object": "list", "data": [
            {"id": w.slug, "object": "model", "created": unix(w.created_at),
             "owned_by": w.settings.get("chatProvider") or "ledgerllm"} for w in list_workspaces(ctx, request.user)]}

    @post("/chat/completions", operation_id="v1OpenAiChatCompletions", status_code=200, media_type=EVENT_STREAM,
          **COMMON)
    async def completions(self, ctx: Context, request: Request, data: CompletionBody) -> Any:
        """OpenAI's chat completions; with `stream`, `chat.completion.chunk` frames ending in
        `data: [DONE]` as OpenAI clients expect (upstream sends neither)."""
        try:
            req = _openai_request(request, data)
            prepared = await anyio.to_thread.run_sync(chat.prepare, ctx, req)
        except DomainError as e:
            return _openai_error(str(e), e.status)
        completion_id, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        if data.stream:
            return sse(lambda cancel: _openai_chunks(ctx, prepared, cancel, completion_id, created, data.model),
                       on_error=lambda e: {"error": {"message": "stream failed", "type": "server_error"}},
                       tail=b"data: [DONE]\n\n")
        try:
            if isinstance(prepared, chat.Immediate):
                text, usage, reason = prepared.text, {}, "no_content"
            else:
                answer = await anyio.to_thread.run_sync(chat.answer, ctx, prepared)
                text, usage = answer["textResponse"] or "", answer.get("metrics", {})
                reason = "stop" if answer["type"] == "textResponse" else "abort"
        except DomainError as e:
            return _openai_error(str(e), e.status, "api_error")
        return _json({
            "id": completion_id, "object": "chat.completion", "created": created, "model": data.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": None,
                         "finish_reason": reason}],
            "usage": {k: usage.get(k, 0) for k in ("prompt_tokens", "completion_tokens", "total_tokens")}})


def _openai_chunks(ctx: Context, prepared: Any, cancel: threading.Event, completion_id: str, created: int,
                   model: str) -> Any:
    def chunk(delta: dict[str, Any], reason: str | None = None, usage: dict[str, Any] | None = None) -> dict[str, Any]:
        body = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": reason}]}
        if usage is not None:
            body["usage"] = usage
        return body

    yield chunk({"role": "assistant", "content": ""})
    if isinstance(prepared, chat.Immediate):
        yield chunk({"content": prepared.text})
        yield chunk({}, "stop")
        return
    for frame in chat.stream(ctx, prepared, cancel):
        if frame["type"] == "textResponseChunk" and frame["textResponse"]:
            yield chunk({"content": frame["textResponse"]})
        elif frame["type"] == "finalizeResponseStream":
            m = frame["metrics"]
            yield chunk({}, "stop", {k: m.get(k, 0) for k in ("prompt_tokens", "completion_tokens", "total_tokens")})
        elif frame["type"] == "abort":
            yield chunk({"content": ""}, "abort")

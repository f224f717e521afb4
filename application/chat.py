"""The chat pipeline: authorize → thread/session → reset → retrieval → history → fit the
window → model → record the exchange (after the reply is complete) → AnythingLLM's shapes.

Every exchange belongs to the acting user and key. History for the next prompt is read
from the chat read model for that workspace, user, thread and session only."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import TypeVar

import msgspec

from application.access import check_scope, visible_workspace
from application.chat_context import MAX_ATTACHMENT_BYTES, MAX_ATTACHMENTS, Attachment, read_attachments, retrieve
from application.context_window import fit
from application.ledger import Command, Context
from application.llm import CompletionFailed, ResolvedLLM, resolve_llm
from application.ports import JsonObject, Message, Part
from application.rows import SettingValue, WorkspaceRow
from domain.chats import Chat, HistoryReset
from domain.errors import DomainError, InvalidInput, NotFound, PermissionDenied
from domain.principal import Role, Scope

MODES = ("chat", "query", "automatic")
REFUSAL = "There is no relevant information in this workspace to answer your query."
RESET_TEXT = "Chat history was reset!"
EMPTY_COMPLETION = "No text completion could be completed with this input."
MAX_MESSAGE_CHARS = 2_000_000
T = TypeVar("T")


class ChatFailed(DomainError):
    """The model could not answer; `abort` is upstream's abort object."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class UnknownModel(DomainError):
    """The OpenAI-compatible route names a workspace as its model; upstream answers 401."""

    status = 401


class SendChat(Command, frozen=True, kw_only=True):
    """Chat in a workspace (or thread, API session or embed session) as the principal."""

    slug: str
    message: str | None = None
    mode: str | None = None
    session_id: str | None = None
    attachments: list[Attachment] | None = None
    reset: bool = False
    thread_slug: str | None = None
    user_id: int | None = None  # thread routes: admins may chat as a member of the workspace
    model_named: bool = False  # OpenAI-compatible route: an unknown workspace is an unknown model
    history: list[tuple[str, str]] | None = None  # OpenAI-compatible route: the client's own history
    system_prompt: str | None = None  # OpenAI-compatible route: the client's system message
    temperature: float | None = None
    embed_id: int | None = None


class Partition(msgspec.Struct, frozen=True):
    """Whose history a chat reads and extends: one workspace, user, thread and session."""

    workspace: WorkspaceRow
    user_id: int
    thread_id: int | None
    session_id: str | None


class Prepared(msgspec.Struct, kw_only=True):
    """A chat ready for the model: the messages that fit its window and what to record."""

    command: SendChat
    partition: Partition
    mode: str
    prompt: str
    messages: list[Message]
    sources: list[JsonObject]
    attachments: list[JsonObject]
    llm: ResolvedLLM
    temperature: float | None


class Refusal(msgspec.Struct, frozen=True, kw_only=True):
    """Query mode found nothing to answer from: the workspace's refusal, recorded outside history."""

    partition: Partition
    prompt: str
    text: str
    attachments: list[JsonObject]


class ResetOnly(msgspec.Struct, frozen=True):
    """A reset with no message: nothing to ask the model."""

    partition: Partition


class Immediate(msgspec.Struct):
    """A reply that needs no model: a reset confirmation or a query-mode refusal."""

    text: str
    chat_id: int | None = None


class Metrics(msgspec.Struct, frozen=True):
    """Upstream's metrics object (its field names)."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    outputTps: float
    duration: float
    model: str
    provider: str


class Answer(msgspec.Struct, frozen=True):
    """A completed exchange. `error` is set when the model answered nothing usable."""

    response_id: str
    text: str
    sources: list[JsonObject]
    chat_id: int | None
    metrics: Metrics
    error: str | None = None


class Delta(msgspec.Struct, frozen=True):
    """A piece of a streamed reply."""

    text: str


class Aborted(msgspec.Struct, frozen=True):
    """A stream that ended with a provider failure."""

    message: str


StreamEvent = Delta | Answer | Aborted


# the command ----------------------------------------------------------------------------------
def send_chat(ctx: Context, cmd: SendChat) -> Prepared | Immediate:
    """Handle the chat up to the model: record the history reset asked for and a query-mode
    refusal, and answer those at once (Immediate); otherwise what the model is to answer
    (Prepared), whose exchange `answer` or `stream` records once the reply is complete."""
    planned = plan_chat(ctx, cmd)
    if cmd.reset:
        record_reset(ctx, cmd, planned.partition)
    if isinstance(planned, ResetOnly):
        return Immediate(RESET_TEXT)
    if isinstance(planned, Refusal):
        chat_id = record(ctx, cmd, planned.partition, prompt=planned.prompt, text=planned.text, mode="query",
                         sources=[], attachments=planned.attachments, model=None, usage=(0, 0), latency_ms=0.0,
                         include=False, status="refused")
        return Immediate(planned.text, chat_id)
    return planned


def plan_chat(ctx: Context, cmd: SendChat) -> Prepared | Refusal | ResetOnly:
    """Check the chat and work out what it asks, recording nothing (bad input raises here,
    before anything is stored)."""
    check_scope(cmd.principal, Scope.CHAT)
    workspace = _workspace(ctx, cmd)
    user_id = _acting_user(ctx, cmd, workspace)
    partition = Partition(workspace, user_id, _thread(ctx, cmd, workspace, user_id), cmd.session_id)
    if cmd.reset and not cmd.message:
        return ResetOnly(partition)
    message = cmd.message
    if not isinstance(message, str) or not message.strip():
        raise InvalidInput("Message is empty")
    if len(message) > MAX_MESSAGE_CHARS:
        raise InvalidInput(f"Message is longer than {MAX_MESSAGE_CHARS} characters")
    if "\x00" in message:  # refused now, not after the model ran (the event could not be stored)
        raise InvalidInput("Message may not contain the NUL character (U+0000).")
    mode = cmd.mode if cmd.mode is not None else str(workspace.settings.get("chatMode", "chat"))
    if mode not in MODES:
        raise InvalidInput(f"{mode} is not a valid mode.")
    mode = "chat" if mode == "automatic" else mode
    llm = resolve_llm(ctx, workspace.settings)
    images, doc_context, doc_sources, attachment_meta = read_attachments(ctx, cmd.attachments)
    attachments: list[JsonObject] = [dict(m) for m in attachment_meta]
    context, sources = retrieve(ctx, workspace, message)
    context, sources = doc_context + context, doc_sources + sources
    if mode == "query" and not context:
        refusal = str(workspace.settings.get("queryRefusalResponse") or REFUSAL)
        return Refusal(partition=partition, prompt=message, text=refusal, attachments=attachments)
    history: Iterable[tuple[str, str]]
    if cmd.history is not None:
        history = reversed(cmd.history)
    else:  # a reset in the same request leaves this partition's history empty
        history = () if cmd.reset else load_history(ctx, partition, cmd.embed_id)
    system = _system_prompt(ctx, cmd.system_prompt or str(workspace.settings.get("openAiPrompt") or ""))
    prompt: str | list[Part] = message
    if images:
        prompt = [{"type": "text", "text": message}, *images]
    messages, _ = fit(ctx.content.tokenizer, llm.context_window, system, context, history, prompt)
    temperature = cmd.temperature if cmd.temperature is not None else _temperature(workspace.settings.get("openAiTemp"))
    return Prepared(command=cmd, partition=partition, mode=mode, prompt=message, messages=messages, sources=sources,
                    attachments=attachments, llm=llm, temperature=temperature)


def _workspace(ctx: Context, req: SendChat) -> WorkspaceRow:
    try:
        return visible_workspace(ctx, req.principal, req.slug, Scope.CHAT)
    except NotFound:
        if req.model_named:
            raise UnknownModel(f"The model `{req.slug}` does not exist or you do not have access to it.") from None
        raise


def _acting_user(ctx: Context, req: SendChat, workspace: WorkspaceRow) -> int:
    """The key's (or session's) user. `userId` is honoured for admins only, and only for an
    active user who may use the workspace (upstream trusts it blindly)."""
    if req.user_id is None or req.user_id == req.principal.user_id:
        return req.principal.user_id
    if not req.principal.is_admin:
        raise PermissionDenied("Only admins may chat on behalf of another user.")
    user = ctx.accounts.user(req.user_id)
    if user is None or user.deleted or user.suspended:
        raise NotFound("User not found or suspended")
    if ctx.accounts.is_multi_user() and user.role == Role.DEFAULT.value and user.id not in ctx.library.member_ids(workspace.id):
        raise PermissionDenied("That user is not a member of this workspace.")
    return user.id


def _thread(ctx: Context, req: SendChat, workspace: WorkspaceRow, user_id: int) -> int | None:
    if req.thread_slug is None:
        return None
    row = ctx.chats.thread(workspace.id, req.thread_slug)
    if row is None or (row.user_id != user_id and not req.principal.is_admin):
        raise NotFound(f"Workspace {workspace.slug} or thread {req.thread_slug} is not valid.")
    return row.id


def _system_prompt(ctx: Context, template: str) -> str:
    now = ctx.clock.now()
    return (template.replace("{datetime}", now.strftime("%Y-%m-%d %H:%M UTC"))
            .replace("{date}", now.strftime("%Y-%m-%d")).replace("{time}", now.strftime("%H:%M UTC")))


def _temperature(setting: SettingValue) -> float | None:
    if isinstance(setting, str):
        try:
            return float(setting)
        except ValueError:
            return None
    return None if setting is None else float(setting)


def load_history(ctx: Context, partition: Partition, embed_id: int | None = None) -> Iterator[tuple[str, str]]:
    """The newest N included exchanges of exactly this partition, newest first, read as the
    window fit asks for them. N is the workspace's openAiHistory (0 means none; upstream
    turns 0 into 20)."""
    limit = int(partition.workspace.settings.get("openAiHistory", 20) or 0)
    if limit <= 0:
        return iter(())
    if embed_id is not None:
        return ctx.chats.embed_prompt_history(embed_id, partition.session_id, limit)
    return ctx.chats.prompt_history(partition.workspace.id, partition.user_id, partition.thread_id,
                                    partition.session_id, limit)


# recording ----------------------------------------------------------------------------------
def record(ctx: Context, cmd: SendChat, partition: Partition, *, prompt: str, text: str, mode: str,
           sources: list[JsonObject], attachments: list[JsonObject], model: str | None, usage: tuple[int, int],
           latency_ms: float, include: bool, status: str, error: str | None = None) -> int:
    """Record one exchange as an event (with its user and key) and wait for the history view."""
    actor = cmd.actor()
    chat_id = ctx.chat_ids.next(ctx, actor)
    # What came from elsewhere (the model's reply, attachment and document text) may hold NUL
    # characters, which no event may carry (a PostgreSQL read model could not store them).
    text, error = _without_nul(text), _without_nul(error)
    sources, attachments = _without_nul(sources), _without_nul(attachments)
    chat = Chat.record(
        actor, chat_id, workspace_id=partition.workspace.id, user_id=partition.user_id,
        thread_id=partition.thread_id, session_id=partition.session_id, embed_id=cmd.embed_id, prompt=prompt,
        response=text, mode=mode, sources=sources, attachments=attachments, model=model, prompt_tokens=usage[0],
        completion_tokens=usage[1], latency_ms=round(latency_ms, 3), include=include, status=status, error=error,
    )
    ctx.save(chat, project=[ctx.chats])
    return chat_id


def _without_nul(value: T) -> T:
    if isinstance(value, str):
        return value.replace("\x00", "") if "\x00" in value else value  # type: ignore[return-value]
    if isinstance(value, list):
        return [_without_nul(v) for v in value]  # type: ignore[return-value]
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}  # type: ignore[return-value]
    return value


def record_reset(ctx: Context, cmd: SendChat, partition: Partition) -> None:
    reset = HistoryReset.record(cmd.actor(), partition.workspace.id, partition.user_id, partition.thread_id,
                                partition.session_id, cmd.embed_id)
    ctx.save(reset, project=[ctx.chats])


def _record_prepared(ctx: Context, p: Prepared, text: str, usage: tuple[int, int], latency_ms: float,
                     status: str, error: str | None = None) -> int:
    return record(ctx, p.command, p.partition, prompt=p.prompt, text=text, mode=p.mode, sources=p.sources,
                  attachments=p.attachments, model=p.llm.config.model, usage=usage, latency_ms=latency_ms,
                  include=status == "ok", status=status, error=error)


def metrics(p: Prepared, usage: tuple[int, int], seconds: float) -> Metrics:
    return Metrics(usage[0], usage[1], sum(usage), round(usage[1] / seconds, 3) if seconds > 0 else 0,
                   round(seconds, 3), p.llm.config.model, p.llm.provider)


# answering ----------------------------------------------------------------------------------
def answer(ctx: Context, p: Prepared) -> Answer:
    """Sync chat. A provider failure is recorded (outside history) and raised as ChatFailed,
    which the routes answer in their error shape (upstream's abort object)."""
    started = time.perf_counter()
    try:
        completion = ctx.completions.complete(p.llm.config, p.messages, temperature=p.temperature)
    except CompletionFailed as e:
        _record_prepared(ctx, p, "", (0, 0), (time.perf_counter() - started) * 1000, "failed", e.message)
        raise ChatFailed(e.message, 504 if e.kind == "timeout" else 502) from None
    seconds = time.perf_counter() - started
    usage = (completion.usage.prompt_tokens, completion.usage.completion_tokens)
    return _finish(ctx, p, str(uuid.uuid4()), completion.text, usage, seconds)


def _finish(ctx: Context, p: Prepared, response_id: str, text: str, usage: tuple[int, int], seconds: float) -> Answer:
    if not text.strip():
        _record_prepared(ctx, p, "", usage, seconds * 1000, "failed", EMPTY_COMPLETION)
        return Answer(response_id, "", [], None, metrics(p, usage, seconds), EMPTY_COMPLETION)
    chat_id = _record_prepared(ctx, p, text, usage, seconds * 1000, "ok")
    return Answer(response_id, text, p.sources, chat_id, metrics(p, usage, seconds))


def stream(ctx: Context, p: Prepared, cancel: threading.Event) -> Iterator[StreamEvent]:
    """Streaming chat: the reply's pieces, then the recorded Answer (or Aborted on a provider
    error). A client that goes away (`cancel` set) stops the upstream call; what was streamed
    so far is recorded as a partial exchange."""
    response_id = str(uuid.uuid4())
    started = time.perf_counter()
    parts: list[str] = []
    usage = (0, 0)
    try:
        for event in ctx.completions.stream(p.llm.config, p.messages, temperature=p.temperature, cancel=cancel):
            if event.text:
                parts.append(event.text)
                yield Delta(event.text)
            if event.done:
                usage = (event.usage.prompt_tokens, event.usage.completion_tokens) if event.usage else usage
    except CompletionFailed as e:
        text, seconds = "".join(parts), time.perf_counter() - started
        if e.kind == "cancelled":
            _record_prepared(ctx, p, text, usage, seconds * 1000, "partial", "client disconnected")
            return
        _record_prepared(ctx, p, text, usage, seconds * 1000, "failed", e.message)
        yield Aborted(e.message)
        return
    yield _finish(ctx, p, response_id, "".join(parts), usage, time.perf_counter() - started)

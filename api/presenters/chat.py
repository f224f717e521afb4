"""Chat, thread, history and embed shapes as AnythingLLM clients parse them (field names are
upstream's), and the error bodies of those route families."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import msgspec
from litestar.openapi.datastructures import ResponseSpec

from api.errors import ErrorBody, ErrorDocs
from application.chat import Aborted, Answer, Delta, Immediate, StreamEvent
from application.threads import ThreadRow


# error bodies ----------------------------------------------------------------------------------
# A refused key (403) answers `{"error": ...}` on every route, as upstream's key middleware
# does; the other statuses answer in the route family's shape.
FORBIDDEN = {403: ResponseSpec(ErrorBody, description=ErrorDocs.descriptions[403], generate_examples=False,
                               media_type="application/json")}


class ChatAbort(msgspec.Struct):
    """Upstream's abort ResponseObject: what the chat routes answer when a chat is refused."""

    id: str
    type: str
    textResponse: None
    sources: list[Any]
    close: bool
    error: str

    @classmethod
    def of(cls, message: str, status: int) -> ChatAbort | ErrorBody:
        return ErrorBody(message) if status == 403 else cls.refusal(message)

    @classmethod
    def refusal(cls, message: str) -> ChatAbort:
        return cls(str(uuid.uuid4()), "abort", None, [], True, message)


class WidgetAbort(ChatAbort):
    """The embed widget's chat route answers every refusal in the abort shape, a 403 too (an
    origin not on the allowlist: the widget has no key to refuse)."""

    @classmethod
    def of(cls, message: str, status: int) -> ChatAbort:
        return cls.refusal(message)


class ThreadError(msgspec.Struct):
    """`{"thread": null, "message": "..."}`: the thread routes' error body."""

    thread: None
    message: str

    @classmethod
    def of(cls, message: str, status: int) -> ThreadError | ErrorBody:
        return ErrorBody(message) if status == 403 else cls(None, message)


class HistoryError(msgspec.Struct):
    """`{"history": [], "message": "..."}`: the history routes' error body (with `error` too,
    as the workspace history route answers)."""

    history: list[Any]
    message: str
    error: str

    @classmethod
    def of(cls, message: str, status: int) -> HistoryError | ErrorBody:
        return ErrorBody(message) if status == 403 else cls([], message, message)


class MessageError(msgspec.Struct):
    """`{"message": "...", "error": "..."}`: the export route's error body."""

    message: str
    error: str

    @classmethod
    def of(cls, message: str, status: int) -> MessageError | ErrorBody:
        return ErrorBody(message) if status == 403 else cls(message, message)


# responses -------------------------------------------------------------------------------------
class ChatReply(msgspec.Struct, omit_defaults=True):
    """Upstream's ResponseObject of a sync chat."""

    id: str
    type: str
    textResponse: str | None
    sources: list[dict[str, Any]]
    close: bool
    error: str | None
    metrics: dict[str, Any]
    chatId: int | None = None


class ThreadOut(msgspec.Struct):
    id: int
    name: str
    slug: str
    workspace_id: int
    user_id: int
    createdAt: str
    lastUpdatedAt: str


class ThreadAnswer(msgspec.Struct):
    thread: ThreadOut
    message: None = None


class ThreadList(msgspec.Struct):
    threads: list[ThreadOut]


class History(msgspec.Struct):
    """Entries as upstream's convertToChatHistory gives them: user and assistant entries differ
    in their members, so each stays the mapping the use case built."""

    history: list[dict[str, Any]]


def thread_out(t: ThreadRow) -> ThreadOut:
    return ThreadOut(t.id, t.name, t.slug, t.workspace_id, t.user_id, t.created_at, t.updated_at)


def abort(message: str, response_id: str | None = None) -> dict[str, Any]:
    return {"id": response_id or str(uuid.uuid4()), "type": "abort", "textResponse": None, "sources": [],
            "close": True, "error": message}


def immediate_reply(result: Immediate) -> ChatReply:
    return ChatReply(str(uuid.uuid4()), "textResponse", result.text, [], True, None, {}, result.chat_id)


def chat_reply(answer: Answer) -> ChatReply:
    metrics = msgspec.structs.asdict(answer.metrics)
    if answer.error is not None:
        return ChatReply(answer.response_id, "abort", None, [], True, answer.error, metrics)
    return ChatReply(answer.response_id, "textResponse", answer.text, answer.sources, True, None, metrics,
                     answer.chat_id)


def immediate_frames(result: Immediate) -> list[dict[str, Any]]:
    return [{**msgspec.structs.asdict(immediate_reply(result)), "close": True}]


def stream_frames(response_id: str, events: Iterator[StreamEvent]) -> Iterator[dict[str, Any]]:
    """Upstream's stream-chat framing (reference §2.4): token chunks, a closing chunk with the
    sources, then `finalizeResponseStream` once the exchange is recorded; a failure ends in an
    `abort` frame."""
    for event in events:
        if isinstance(event, Delta):
            yield {"uuid": response_id, "sources": [], "type": "textResponseChunk", "textResponse": event.text,
                   "close": False, "error": False}
        elif isinstance(event, Aborted):
            yield {**abort(event.message), "uuid": response_id}
        elif event.error is not None:
            yield {**abort(event.error), "uuid": response_id}
        else:
            yield {"uuid": response_id, "sources": event.sources, "type": "textResponseChunk", "textResponse": "",
                   "close": True, "error": False}
            yield {"uuid": response_id, "type": "finalizeResponseStream", "close": True, "error": False,
                   "chatId": event.chat_id, "metrics": msgspec.structs.asdict(event.metrics),
                   "sources": event.sources}


def history_out(entries: list[dict[str, Any]]) -> History:
    return History(entries)

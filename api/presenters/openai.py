"""OpenAI's shapes (chat completions, their stream chunks, models, errors), built from the
chat use case's results, as the openai SDK parses them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

import msgspec

from api.errors import ErrorBody
from application.chat import Aborted, Answer, Delta, Immediate, StreamEvent

ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
               404: "not_found_error", 409: "conflict_error", 413: "invalid_request_error",
               422: "invalid_request_error", 429: "rate_limit_exceeded"}


class OpenAiErrorDetail(msgspec.Struct):
    message: str
    type: str
    param: str | None
    code: str | None


class OpenAiError(msgspec.Struct):
    """`{"error": {"message", "type", "param", "code"}}`: what OpenAI answers, and its SDK reads."""

    error: OpenAiErrorDetail

    @classmethod
    def of(cls, message: str, status: int) -> OpenAiError | ErrorBody:
        if status == 403:  # a refused key: `{"error": ...}`, as upstream (the SDK reads either)
            return ErrorBody(message)
        kind = ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
        code = "model_not_found" if status == 401 else None
        return cls(OpenAiErrorDetail(message, kind, None, code))


class Usage(msgspec.Struct):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class AssistantMessage(msgspec.Struct):
    role: Literal["assistant"]
    content: str


class Choice(msgspec.Struct):
    index: int
    message: AssistantMessage
    logprobs: None
    finish_reason: str


class Completion(msgspec.Struct):
    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    choices: list[Choice]
    usage: Usage


class ChunkDelta(msgspec.Struct, omit_defaults=True):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChunkChoice(msgspec.Struct):
    index: int
    delta: ChunkDelta
    logprobs: None
    finish_reason: str | None


class Chunk(msgspec.Struct, omit_defaults=True):
    id: str
    object: Literal["chat.completion.chunk"]
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None


class Model(msgspec.Struct):
    id: str
    object: Literal["model"]
    created: int
    owned_by: str


class ModelList(msgspec.Struct):
    object: Literal["list"]
    data: list[Model]


NO_USAGE = Usage(0, 0, 0)


def _usage(answer: Answer) -> Usage:
    m = answer.metrics
    return Usage(m.prompt_tokens, m.completion_tokens, m.total_tokens)


def completion(completion_id: str, created: int, model: str, result: Answer | Immediate) -> Completion:
    if isinstance(result, Immediate):
        text, reason, usage = result.text, "stop", NO_USAGE
    else:
        text, reason, usage = result.text, "stop" if result.error is None else "abort", _usage(result)
    return Completion(completion_id, "chat.completion", created, model,
                      [Choice(0, AssistantMessage("assistant", text), None, reason)], usage)


def chunks(completion_id: str, created: int, model: str, events: Iterator[StreamEvent] | Immediate) -> Iterator[Chunk]:
    """`chat.completion.chunk` frames: the role, the content pieces, then the finish reason
    (with the usage); the route ends the stream with `data: [DONE]`."""

    def chunk(delta: ChunkDelta, reason: str | None = None, usage: Usage | None = None) -> Chunk:
        return Chunk(completion_id, "chat.completion.chunk", created, model, [ChunkChoice(0, delta, None, reason)],
                     usage)

    yield chunk(ChunkDelta("assistant", ""))
    if isinstance(events, Immediate):
        yield chunk(ChunkDelta(content=events.text))
        yield chunk(ChunkDelta(), "stop", NO_USAGE)
        return
    for event in events:
        if isinstance(event, Delta):
            yield chunk(ChunkDelta(content=event.text))
        elif isinstance(event, Aborted):
            yield chunk(ChunkDelta(), "abort")
        else:
            yield chunk(ChunkDelta(), "stop" if event.error is None else "abort", _usage(event))


def stream_failed() -> OpenAiError:
    return OpenAiError(OpenAiErrorDetail("stream failed", "api_error", None, None))


class EmbeddingUsage(msgspec.Struct):
    prompt_tokens: int
    total_tokens: int


class Embedding(msgspec.Struct):
    object: Literal["embedding"]
    embedding: list[float]
    index: int


class Embeddings(msgspec.Struct):
    object: Literal["list"]
    model: str
    data: list[Embedding]
    usage: EmbeddingUsage


def embeddings_out(model: str, vectors: list[list[float]], tokens: int) -> Embeddings:
    return Embeddings("list", model, [Embedding("embedding", v, i) for i, v in enumerate(vectors)],
                      EmbeddingUsage(tokens, tokens))


class FileCounts(msgspec.Struct):
    total: int


class VectorStore(msgspec.Struct):
    id: str
    object: Literal["vector_store"]
    name: str
    file_counts: FileCounts
    provider: str


class VectorStores(msgspec.Struct):
    first_id: str | None
    last_id: str | None
    data: list[VectorStore]
    has_more: bool


def vector_stores_out(stores: list[dict[str, object]]) -> VectorStores:
    """From the search use case's store mappings (its shape is OpenAI's already)."""
    data = msgspec.convert(stores, list[VectorStore])
    return VectorStores(data[0].id if data else None, data[-1].id if data else None, data, False)

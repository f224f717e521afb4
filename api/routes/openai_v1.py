"""The OpenAI-compatible routes (`/api/v1/openai`): models, chat completions, embeddings and
vector stores. Errors answer OpenAI's shape, which the openai SDK turns into its error classes."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Annotated, Literal

import anyio
import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import OpenAPIMediaType, Operation
from litestar.response import Stream
from msgspec import Meta

from api.errors import raises
from api.presenters import request_id
from api.presenters.chat import FORBIDDEN
from api.presenters.openai import (
    Completion, Embeddings, Model, ModelList, OpenAiError, VectorStores, chunks, completion, embeddings_out,
    stream_failed, vector_stores_out,
)
from api.schema import Temperature
from api.sse import sse
from application import chat, search
from application.ledger import Context
from application.workspaces import list_workspaces
from domain.errors import InvalidInput
from domain.timefmt import unix

SYNC = {"sync_to_thread": True}
EVENT_STREAM = "text/event-stream"
OPENAI = {"error_shape": OpenAiError}
MAX_IMAGE_URL = chat.MAX_ATTACHMENT_BYTES * 4 // 3 + 100


class TextPart(msgspec.Struct, tag_field="type", tag="text"):
    text: Annotated[str, Meta(max_length=chat.MAX_MESSAGE_CHARS)]


class ImageUrl(msgspec.Struct):
    url: Annotated[str, Meta(min_length=1, max_length=MAX_IMAGE_URL)]
    detail: Literal["auto", "low", "high"] | None = None


class ImagePart(msgspec.Struct, tag_field="type", tag="image_url"):
    image_url: ImageUrl


ContentPart = TextPart | ImagePart


class OpenAiMessage(msgspec.Struct):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: Annotated[str, Meta(max_length=chat.MAX_MESSAGE_CHARS)] | Annotated[
        list[ContentPart], Meta(max_length=100)] | None = None


class CompletionBody(msgspec.Struct):
    model: Annotated[str, Meta(min_length=1, max_length=200)]
    messages: Annotated[list[OpenAiMessage], Meta(min_length=1, max_length=1000)]
    stream: bool = False
    temperature: Temperature | None = None


def _text(content: str | list[ContentPart] | None) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    return " ".join(p.text for p in content if isinstance(p, TextPart))


def _images(content: str | list[ContentPart] | None) -> list[chat.Attachment]:
    if content is None or isinstance(content, str):
        return []
    return [chat.Attachment("image", "image/png", p.image_url.url) for p in content if isinstance(p, ImagePart)]


def _chat_request(request: Request, data: CompletionBody) -> chat.SendChat:
    """The last message is the prompt; the first system message replaces the workspace
    prompt; the other messages are the history the client keeps itself."""
    msgs = data.messages
    if msgs[-1].role != "user":
        raise InvalidInput("The last message must have the role 'user'.")
    system = next((_text(m.content) for m in msgs if m.role in ("system", "developer")), None)
    pairs: list[tuple[str, str]] = []
    pending: str | None = None
    for m in msgs[:-1]:
        if m.role == "user":
            pending = _text(m.content)
        elif m.role == "assistant":
            pairs.append((pending or "", _text(m.content)))
            pending = None
    images = _images(msgs[-1].content)
    return chat.SendChat(principal=request.user, correlation_id=request_id(request), slug=data.model,
                            message=_text(msgs[-1].content), mode="chat", attachments=images or None, history=pairs,
                            system_prompt=system, temperature=data.temperature, model_named=True)


@dataclass
class CompletionsOperation(Operation):
    """A 200 is a `chat.completion` (JSON), or with `stream` its chunks as server-sent events."""

    def __post_init__(self) -> None:
        ok = (self.responses or {}).get("200")
        if ok is not None and not isinstance(ok, dict) and getattr(ok, "content", None) is not None:
            ok.content[EVENT_STREAM] = OpenAPIMediaType(schema={  # type: ignore[arg-type]
                "type": "string", "description": "`data: <chat.completion.chunk>` frames, then `data: [DONE]`"})


class OpenAiChatController(Controller):
    path = "/openai"
    tags = ["OpenAI Compatible Endpoints"]

    @get("/models", operation_id="v1OpenAiModels", responses=FORBIDDEN, opt=OPENAI, **SYNC)
    def models(self, ctx: Context, request: Request) -> ModelList:
        """Each workspace the caller can see is a model; its id is the slug."""
        return ModelList("list", [Model(w.slug, "model", unix(w.created_at), w.settings.get("chatProvider") or "ledgerllm")
                                  for w in list_workspaces(ctx, request.user)])

    @post("/chat/completions", operation_id="v1OpenAiChatCompletions", status_code=200, media_type=EVENT_STREAM,
          responses={200: ResponseSpec(Completion, description="The completion (JSON), or its chunks (SSE)",
                                       generate_examples=False, media_type="application/json"), **FORBIDDEN},
          operation_class=CompletionsOperation, opt={**OPENAI, **raises(404, 502, 504)})
    async def completions(self, ctx: Context, request: Request, data: CompletionBody) -> Stream | Response[Completion]:
        """OpenAI's chat completions (the model is a workspace slug; an unknown one is 401, as
        upstream); with `stream`, `chat.completion.chunk` frames ending in `data: [DONE]`."""
        req = _chat_request(request, data)
        prepared = await anyio.to_thread.run_sync(chat.send_chat, ctx, req)
        completion_id, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        if data.stream:
            return sse(lambda cancel: chunks(completion_id, created, data.model, prepared if isinstance(
                prepared, chat.Immediate) else chat.stream(ctx, prepared, cancel)),
                on_error=lambda e: stream_failed(), tail=b"data: [DONE]\n\n")
        result = prepared if isinstance(prepared, chat.Immediate) else await anyio.to_thread.run_sync(
            chat.answer, ctx, prepared)
        return _json(completion(completion_id, created, data.model, result))


def _json(body: Completion) -> Response[Completion]:
    """A JSON answer from a route whose declared media type is the event stream."""
    return Response(body, media_type="application/json")


EmbeddingText = Annotated[str, Meta(max_length=search.MAX_QUERY_CHARS * 10)]
EmbeddingInput = EmbeddingText | Annotated[list[EmbeddingText], Meta(max_length=search.MAX_INPUTS)]


class EmbeddingsBody(msgspec.Struct):
    input: EmbeddingInput | None = None
    inputs: EmbeddingInput | None = None  # upstream's legacy name
    model: Annotated[str, Meta(max_length=200)] | None = None  # ignored: one embedder


class OpenAiController(Controller):
    path = "/openai"
    tags = ["OpenAI Compatible Endpoints"]

    @post("/embeddings", operation_id="v1OpenAiEmbeddings", status_code=200, **SYNC)
    def embeddings(self, ctx: Context, request: Request, data: EmbeddingsBody) -> Embeddings:
        """`input` (or legacy `inputs`): a string or a list of strings."""
        vectors, tokens = search.embed_inputs(ctx, request.user, data.input if data.input is not None else data.inputs)
        return embeddings_out(ctx.content.embedder.model_name, vectors, tokens)

    @get("/vector_stores", operation_id="v1OpenAiVectorStores", **SYNC)
    def vector_stores(self, ctx: Context, request: Request) -> VectorStores:
        return vector_stores_out(search.vector_stores(ctx, request.user))

"""The OpenAI-compatible embeddings and vector stores (`/api/v1/openai`)."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, get, post

from application import search
from application.ledger import Context
from domain.errors import DomainError

COMMON = {"sync_to_thread": True}


class OpenAiController(Controller):
    path = "/openai"
    tags = ["OpenAI Compatible Endpoints"]

    @post("/embeddings", operation_id="v1OpenAiEmbeddings", status_code=200, **COMMON)
    def embeddings(self, ctx: Context, request: Request, data: dict[str, Any]) -> Response[dict[str, Any]]:
        """`input` (or legacy `inputs`): a string or a list of strings."""
        try:
            vectors, tokens = search.embed_inputs(ctx, request.user, data.get("input", data.get("inputs")))
        except DomainError as e:
            return Response({"error": str(e)}, status_code=e.status)
        model = ctx.content.embedder.model_name
        return Response({"object": "list", "model": model,
                         "data": [{"object": "embedding", "embedding": v, "index": i} for i, v in enumerate(vectors)],
                         "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})

    @get("/vector_stores", operation_id="v1OpenAiVectorStores", **COMMON)
    def vector_stores(self, ctx: Context, request: Request) -> dict[str, Any]:
        stores = search.vector_stores(ctx, request.user)
        return {"first_id": stores[0]["id"] if stores else None, "last_id": stores[-1]["id"] if stores else None,
                "data": stores, "has_more": False}

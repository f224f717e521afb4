"""Vector search in a workspace, embeddings for the OpenAI-compatible surface, vector counts."""

from __future__ import annotations

from typing import Any

import msgspec
import numpy as np

from application.access import check_scope
from application.ledger import Context
from application.workspaces import list_workspaces, visible_workspace
from domain.errors import InvalidInput
from domain.principal import Principal, Scope
from projections.vectors import cached_vector, chunk_hash, chunks_by_ids, put_embeddings

MAX_QUERY_CHARS = 20_000
MAX_TOP_N = 200
MAX_INPUTS = 2048


class SearchHit(msgspec.Struct, frozen=True):
    id: str
    text: str
    metadata: dict[str, Any]
    distance: float
    score: float


def embed_query(ctx: Context, text: str) -> np.ndarray:
    """A query's vector, from the cache when the same text was embedded before."""
    embedder = ctx.content.embedder
    digest = chunk_hash(text)
    vector = cached_vector(ctx.vectors.view, embedder.model_name, digest)
    if vector is None:
        vector = embedder.embed([text])[0]
        put_embeddings(ctx.vectors.view, embedder.model_name, [(digest, vector)])
    return vector


def vector_search(ctx: Context, principal: Principal, slug: str, query: Any, top_n: Any = None,
                  threshold: Any = None) -> list[SearchHit]:
    """Cosine similarity (`score`, 1 = same direction) and `distance = 1 - score`, best first,
    at least `threshold`. Upstream caps distance at 1, so every hit passes; here it does not."""
    workspace = visible_workspace(ctx, principal, slug)
    if not isinstance(query, str) or not query.strip():
        raise InvalidInput("Query parameter cannot be empty.")
    if len(query) > MAX_QUERY_CHARS:
        raise InvalidInput(f"Query must be at most {MAX_QUERY_CHARS} characters.")
    k = _int(top_n, workspace.settings.get("topN") or 4, "topN")
    k = max(1, min(k, MAX_TOP_N))
    floor = _float(threshold, workspace.settings.get("similarityThreshold", 0.25), "scoreThreshold")
    floor = max(0.0, min(1.0, floor))
    hits = ctx.content.index.search(workspace.aggregate_id, embed_query(ctx, query.strip()), k)
    rows = chunks_by_ids(ctx.vectors.view, [i for i, _ in hits])
    documents = _documents(ctx, {r.document_id for r in rows.values()})
    out = []
    for chunk_id, score in hits:
        row = rows.get(chunk_id)
        if row is None or score < floor:
            continue
        meta = documents.get(row.document_id, {})
        out.append(SearchHit(
            id=row.vector_id, text=row.text, distance=round(1.0 - score, 6), score=round(score, 6),
            metadata={
                "url": meta.get("url"), "title": meta.get("title"), "author": meta.get("docAuthor"),
                "description": meta.get("description"), "docSource": meta.get("docSource"),
                "chunkSource": meta.get("chunkSource"), "published": meta.get("published"),
                "wordCount": meta.get("wordCount"), "tokenCount": meta.get("tokenCount"),
                "docpath": row.docpath, "chunkIndex": row.chunk_index,
            },
        ))
    return out


def _documents(ctx: Context, ids: set[str]) -> dict[str, dict[str, Any]]:
    if not ids:
        return {}
    import json

    marks = ",".join("?" * len(ids))
    with ctx.library.view.read() as tx:
        rows = tx.all(f"SELECT document_id, metadata, word_count, token_count FROM documents"
                      f" WHERE document_id IN ({marks})", tuple(ids))
    return {r["document_id"]: {**json.loads(r["metadata"]), "wordCount": r["word_count"],
                               "tokenCount": r["token_count"]} for r in rows}


def _int(value: Any, default: int, field: str) -> int:
    if value is None:
        return int(default)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidInput(f"{field} must be a number")
    return int(value)


def _float(value: Any, default: float, field: str) -> float:
    if value is None:
        return float(default)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidInput(f"{field} must be a number")
    return float(value)


def embed_inputs(ctx: Context, principal: Principal, inputs: Any) -> tuple[list[list[float]], int]:
    """For POST /v1/openai/embeddings: vectors of a string or a list of strings, plus a token count."""
    check_scope(principal, Scope.READ)
    texts = [inputs] if isinstance(inputs, str) else inputs
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) and t for t in texts):
        raise InvalidInput("input must be a non-empty string or a list of non-empty strings")
    if len(texts) > MAX_INPUTS or any(len(t) > MAX_QUERY_CHARS * 10 for t in texts):
        raise InvalidInput(f"input must hold at most {MAX_INPUTS} strings of at most {MAX_QUERY_CHARS * 10} characters")
    vectors = ctx.content.embedder.embed(texts)
    tokens = sum(ctx.content.tokenizer.count(t) for t in texts)
    return [v.tolist() for v in vectors], tokens


def vector_count(ctx: Context, principal: Principal) -> int:
    check_scope(principal, Scope.READ)
    return ctx.content.index.count()


def vector_stores(ctx: Context, principal: Principal) -> list[dict[str, Any]]:
    return [{"id": w.slug, "object": "vector_store", "name": w.name,
             "file_counts": {"total": _doc_count(ctx, w.id)}, "provider": "faiss"}
            for w in list_workspaces(ctx, principal)]


def _doc_count(ctx: Context, workspace_id: int) -> int:
    with ctx.library.view.read() as tx:
        return int(tx.scalar("SELECT COUNT(*) FROM workspace_documents WHERE workspace_id = ?", (workspace_id,)) or 0)

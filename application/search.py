"""Vector search in a workspace, embeddings for the OpenAI-compatible surface, vector counts."""

from __future__ import annotations

import msgspec
import numpy as np

from application.access import check_scope, visible_workspace
from application.ledger import Context
from application.rows import WorkspaceRow
from application.workspaces import list_workspaces
from domain.errors import InvalidInput
from domain.principal import Principal, Scope
from domain.hashing import chunk_hash

MAX_QUERY_CHARS = 20_000
MAX_TOP_N = 200
MAX_INPUTS = 2048


class HitMetadata(msgspec.Struct, frozen=True):
    """What a search hit says of its document (upstream's keys) and where in it the chunk sits."""

    url: str | None
    title: str | None
    author: str | None
    description: str | None
    docSource: str | None
    chunkSource: str | None
    published: str | None
    wordCount: int | None
    tokenCount: int | None
    docpath: str
    chunkIndex: int


class SearchHit(msgspec.Struct, frozen=True):
    id: str
    text: str
    metadata: HitMetadata
    distance: float
    score: float


def embed_query(ctx: Context, text: str) -> np.ndarray:
    """A query's vector, from the cache when the same text was embedded before."""
    embedder = ctx.content.embedder
    digest = chunk_hash(text)
    vector = ctx.vectors.cached_vector(embedder.model_name, digest)
    if vector is None:
        vector = embedder.embed([text])[0]
        ctx.vectors.put_embeddings(embedder.model_name, [(digest, vector)])
    return vector


def vector_search(ctx: Context, principal: Principal, slug: str, query: str | None, top_n: int | None = None,
                  threshold: float | None = None) -> list[SearchHit]:
    """Cosine similarity (`score`, 1 = same direction) and `distance = 1 - score`, best first,
    at least `threshold`. Upstream caps distance at 1, so every hit passes; here it does not."""
    workspace = visible_workspace(ctx, principal, slug)
    if query is None or not query.strip():
        raise InvalidInput("Query parameter cannot be empty.")
    if len(query) > MAX_QUERY_CHARS:
        raise InvalidInput(f"Query must be at most {MAX_QUERY_CHARS} characters.")
    k = top_n if top_n is not None else int(workspace.settings.get("topN") or 4)
    k = max(1, min(k, MAX_TOP_N))
    default_floor = workspace.settings.get("similarityThreshold")
    floor = threshold if threshold is not None else float(0.25 if default_floor is None else default_floor)
    floor = max(0.0, min(1.0, floor))
    hits = ctx.content.index.search(workspace.aggregate_id, embed_query(ctx, query.strip()), k)
    rows = ctx.vectors.chunks([i for i, _ in hits])
    documents = ctx.library.documents({r.document_id for r in rows.values()})
    out = []
    for chunk_id, score in hits:
        row = rows.get(chunk_id)
        if row is None or score < floor:
            continue
        doc = documents.get(row.document_id)
        meta = doc.metadata if doc else {}
        out.append(SearchHit(
            id=row.vector_id, text=row.text, distance=round(1.0 - score, 6), score=round(score, 6),
            metadata=HitMetadata(
                url=meta.get("url"), title=meta.get("title"), author=meta.get("docAuthor"),
                description=meta.get("description"), docSource=meta.get("docSource"),
                chunkSource=meta.get("chunkSource"), published=meta.get("published"),
                wordCount=doc.word_count if doc else None, tokenCount=doc.token_count if doc else None,
                docpath=row.docpath, chunkIndex=row.chunk_index),
        ))
    return out


def has_vectors(ctx: Context, workspace: WorkspaceRow) -> bool:
    return ctx.content.index.count(workspace.aggregate_id) > 0


def embed_inputs(ctx: Context, principal: Principal, inputs: str | list[str] | None) -> tuple[list[list[float]], int]:
    """For POST /v1/openai/embeddings: vectors of a string or a list of strings, plus a token count."""
    check_scope(principal, Scope.READ)
    texts: object = [inputs] if isinstance(inputs, str) else inputs
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


def vector_stores(ctx: Context, principal: Principal) -> list[dict[str, object]]:
    return [{"id": w.slug, "object": "vector_store", "name": w.name,
             "file_counts": {"total": _doc_count(ctx, w.id)}, "provider": "faiss"}
            for w in list_workspaces(ctx, principal)]


def _doc_count(ctx: Context, workspace_id: int) -> int:
    return ctx.library.count_workspace_documents(workspace_id)

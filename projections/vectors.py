"""Read model of embedded chunks: text, position and the vector (by chunk-text hash).

Rebuildable from the events alone: a `Workspace.DocumentsEmbedded` event names the document's
text blob and how it was chunked, so the chunks come out the same; their vectors come from the
embedding cache (filled when the document was embedded) or are computed again. Every change
is also written to `vector_changes`, which each process's faiss indexes follow.

`vector_model` records the embedding model (backend included: `infrastructure.embedder.model_id`)
the read model's vectors come from; the projection refuses to add chunks for another one, so
an index never mixes two models. Changing the model is a rebuild: the copy records the new one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
import numpy as np

from application.rows import ChunkRow
from domain.errors import DomainError
from domain.hashing import chunk_hash
from domain.workspaces import Workspace
from projections.base import SqlProjection, Tx, handles
from projections.readmodel import ReadModelView

TextSource = Callable[[str], str]  # text hash -> text
Chunker = Callable[[str, int, int], list[str]]  # text, size, overlap -> chunks
Embed = Callable[[list[str]], np.ndarray]  # texts -> (n, d) float32, normalized


class VectorsProjection(SqlProjection):
    name = "vectors"
    tables = ["chunks", "vector_changes", "vector_model"]
    handler_indexes = frozenset({"chunks_ws_doc"})  # documents removed
    after_reset = ["UPDATE vector_meta SET value = value + 1 WHERE name = 'generation'"]
    kept = ["embedding_cache"]
    meta_tables = ["vector_meta"]
    schema = [
        """CREATE TABLE IF NOT EXISTS chunks (
            id BIGINT PRIMARY KEY, vector_id TEXT NOT NULL UNIQUE, workspace TEXT NOT NULL,
            doc_id TEXT NOT NULL, docpath TEXT NOT NULL, document_id TEXT NOT NULL,
            chunk_index INTEGER NOT NULL, text TEXT NOT NULL, text_hash TEXT NOT NULL)""",
        "CREATE INDEX IF NOT EXISTS chunks_ws_doc ON chunks (workspace, docpath)",
        """CREATE TABLE IF NOT EXISTS vector_changes (
            seq BIGINT PRIMARY KEY, workspace TEXT NOT NULL, chunk_id BIGINT, op TEXT NOT NULL)""",
        "CREATE TABLE IF NOT EXISTS vector_meta (name TEXT PRIMARY KEY, value BIGINT NOT NULL)",
        "CREATE TABLE IF NOT EXISTS vector_model (model TEXT PRIMARY KEY)",
        "INSERT INTO vector_meta VALUES ('generation', 1) ON CONFLICT DO NOTHING",
        # The cache outlives rebuilds (it is not in `tables`): re-embedding never recomputes.
        """CREATE TABLE IF NOT EXISTS embedding_cache (
            text_hash TEXT NOT NULL, model TEXT NOT NULL, vector BYTEA NOT NULL,
            PRIMARY KEY (text_hash, model))""",
    ]

    def __init__(self, view: Any, *, model: str, text_source: TextSource, chunker: Chunker, embed: Embed) -> None:
        super().__init__(view)
        self.model = model
        self.text_source = text_source
        self.chunker = chunker
        self.embed = embed

    def _next(self, tx: Tx, table: str, column: str) -> int:
        return (tx.scalar(f"SELECT MAX({column}) FROM {table}") or 0) + 1

    def _log(self, tx: Tx, workspace: str, chunk_id: int | None, op: str) -> None:
        seq = self._next(tx, "vector_changes", "seq")
        tx.execute("INSERT INTO vector_changes VALUES (?, ?, ?, ?)", (seq, workspace, chunk_id, op))

    @handles(Workspace.DocumentsEmbedded)
    def _embedded(self, tx: Tx, e: Workspace.DocumentsEmbedded) -> None:
        workspace = str(e.originator_id)
        self._claim_model(tx)
        next_id = self._next(tx, "chunks", "id")
        for doc in e.documents:
            texts = self.chunker(self.text_source(doc.text_hash), doc.chunk_size, doc.chunk_overlap)
            hashes = [chunk_hash(t) for t in texts]
            self._fill_cache(tx, dict(zip(hashes, texts)))
            for index, (text, digest) in enumerate(zip(texts, hashes)):
                tx.execute(
                    "INSERT INTO chunks VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (next_id, f"{doc.doc_id}:{index}", workspace, doc.doc_id, doc.docpath, doc.document_id,
                     index, text, digest),
                )
                self._log(tx, workspace, next_id, "add")
                next_id += 1

    def _claim_model(self, tx: Tx) -> None:
        """Record this projection's model on the first chunk; refuse chunks for another model."""
        recorded = _recorded_model(tx)
        if recorded is None:
            tx.execute("INSERT INTO vector_model VALUES (?)", (self.model,))
        elif recorded != self.model:
            raise EmbeddingModelChanged(recorded, self.model)

    def _fill_cache(self, tx: Tx, texts_by_hash: dict[str, str]) -> None:
        """Compute the vectors the cache lacks (only on a rebuild after the cache was lost)."""
        if not texts_by_hash:
            return
        marks = ",".join("?" * len(texts_by_hash))
        have = {r["text_hash"] for r in tx.all(
            f"SELECT text_hash FROM embedding_cache WHERE model = ? AND text_hash IN ({marks})",
            (self.model, *texts_by_hash))}
        missing = [h for h in texts_by_hash if h not in have]
        if missing:
            vectors = self.embed([texts_by_hash[h] for h in missing])
            tx.executemany("INSERT INTO embedding_cache VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                           [(h, self.model, v.astype(np.float32).tobytes()) for h, v in zip(missing, vectors)])

    @handles(Workspace.DocumentsRemoved)
    def _removed(self, tx: Tx, e: Workspace.DocumentsRemoved) -> None:
        workspace = str(e.originator_id)
        for path in e.docpaths:
            ids = [r["id"] for r in tx.all("SELECT id FROM chunks WHERE workspace = ? AND docpath = ?",
                                           (workspace, path))]
            tx.execute("DELETE FROM chunks WHERE workspace = ? AND docpath = ?", (workspace, path))
            for chunk_id in ids:
                self._log(tx, workspace, chunk_id, "remove")

    @handles(Workspace.Deleted)
    def _deleted(self, tx: Tx, e: Workspace.Deleted) -> None:
        workspace = str(e.originator_id)
        tx.execute("DELETE FROM chunks WHERE workspace = ?", (workspace,))
        self._log(tx, workspace, None, "drop")


class EmbeddingModelChanged(DomainError):
    """The vectors read model holds one model's vectors and this process embeds with another."""

    status = 503

    def __init__(self, recorded: str, current: str) -> None:
        super().__init__(
            f"The vectors were made with the embedding model {recorded!r}, but this process embeds with "
            f"{current!r}. Restart it to go on with {recorded!r}, or run `ledgerllm projections rebuild "
            f"vectors` to re-embed every chunk with {current!r} (EMBED_BACKEND), then restart.")
        self.recorded, self.current = recorded, current


# Vectors stored before the model was recorded were all made by torch fp32 under this id.
LEGACY_MODEL = "all-MiniLM-L6-v2"


def _recorded_model(tx: Tx) -> str | None:
    model = tx.scalar("SELECT model FROM vector_model")
    if model is None and tx.scalar("SELECT id FROM chunks LIMIT 1") is not None:
        return LEGACY_MODEL
    return model


def recorded_model(view: Any) -> str | None:
    """The model the read model's vectors come from; None while it holds none."""
    with view.read() as tx:
        return _recorded_model(tx)


# queries on the vectors view (used by the use cases and by the faiss followers) -------------
def missing_embeddings(view: Any, model: str, hashes: list[str]) -> list[str]:
    have: set[str] = set()
    with view.read() as tx:
        for start in range(0, len(hashes), 500):
            part = hashes[start:start + 500]
            marks = ",".join("?" * len(part))
            have |= {r["text_hash"] for r in tx.all(
                f"SELECT text_hash FROM embedding_cache WHERE model = ? AND text_hash IN ({marks})", (model, *part))}
    return [h for h in hashes if h not in have]


def put_embeddings(view: Any, model: str, pairs: list[tuple[str, np.ndarray]]) -> None:
    with view.write() as tx:
        tx.executemany("INSERT INTO embedding_cache VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                       [(h, model, np.asarray(v, dtype=np.float32).tobytes()) for h, v in pairs])


def cached_vector(view: Any, model: str, text_hash: str) -> np.ndarray | None:
    with view.read() as tx:
        row = tx.one("SELECT vector FROM embedding_cache WHERE model = ? AND text_hash = ?", (model, text_hash))
    return None if row is None else np.frombuffer(bytes(row["vector"]), dtype=np.float32)


def generation(view: Any) -> int:
    with view.read() as tx:
        return int(tx.scalar("SELECT value FROM vector_meta WHERE name = 'generation'") or 1)


def changes_since(view: Any, seq: int, limit: int = 5000) -> list[dict[str, Any]]:
    with view.read() as tx:
        return tx.all("SELECT seq, workspace, chunk_id, op FROM vector_changes WHERE seq > ? ORDER BY seq LIMIT ?",
                      (seq, limit))


def chunk_vectors(view: Any, model: str, chunk_ids: list[int]) -> list[tuple[int, str, np.ndarray]]:
    """(chunk id, workspace, vector) for the given chunks that still exist."""
    out = []
    with view.read() as tx:
        for start in range(0, len(chunk_ids), 500):
            part = chunk_ids[start:start + 500]
            marks = ",".join("?" * len(part))
            for r in tx.all(
                f"SELECT c.id, c.workspace, e.vector FROM chunks c JOIN embedding_cache e"
                f" ON e.text_hash = c.text_hash AND e.model = ? WHERE c.id IN ({marks})", (model, *part)):
                out.append((r["id"], r["workspace"], np.frombuffer(bytes(r["vector"]), dtype=np.float32)))
    return out


def all_chunk_ids(view: Any, after: int = 0, limit: int = 5000) -> list[int]:
    with view.read() as tx:
        return [r["id"] for r in tx.all("SELECT id FROM chunks WHERE id > ? ORDER BY id LIMIT ?", (after, limit))]


def chunks_by_ids(view: Any, ids: list[int]) -> dict[int, ChunkRow]:
    if not ids:
        return {}
    marks = ",".join("?" * len(ids))
    with view.read() as tx:
        rows = tx.all(f"SELECT id, vector_id, workspace, doc_id, docpath, document_id, chunk_index, text"
                      f" FROM chunks WHERE id IN ({marks})", tuple(ids))
    return {r["id"]: msgspec.convert(r, ChunkRow) for r in rows}


def count_chunks(view: Any, workspace: str | None = None) -> int:
    with view.read() as tx:
        if workspace is None:
            return int(tx.scalar("SELECT COUNT(*) FROM chunks") or 0)
        return int(tx.scalar("SELECT COUNT(*) FROM chunks WHERE workspace = ?", (workspace,)) or 0)


class Vectors(ReadModelView):
    """Queries on document chunks and the embedding cache."""

    # the query side the use cases call (application.views.VectorsView) ----------------------
    def missing_embeddings(self, model: str, hashes: list[str]) -> list[str]:
        """The chunk-text hashes whose vector for `model` is not in the embedding cache."""
        return missing_embeddings(self.runner.view, model, hashes)

    def put_embeddings(self, model: str, pairs: list[tuple[str, np.ndarray]]) -> None:
        """Keep vectors in the embedding cache (content-addressed: it outlives rebuilds)."""
        put_embeddings(self.runner.view, model, pairs)

    def cached_vector(self, model: str, text_hash: str) -> np.ndarray | None:
        return cached_vector(self.runner.view, model, text_hash)

    def chunks(self, ids: list[int]) -> dict[int, ChunkRow]:
        """The chunks with these ids that still exist, by id."""
        self.runner.check()
        return chunks_by_ids(self.runner.view, ids)

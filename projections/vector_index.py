"""Each process's faiss indexes, kept in step with the vectors read model.

The vectors projection logs every chunk it adds or removes in `vector_changes`; this follower
applies that log to in-memory per-workspace indexes, so every API process has its own copy
without running the projection. A projection rebuild bumps the log's generation, which makes
followers start over. The indexes are saved under DATA_DIR/faiss with the log position they
reflect, so a restart loads them and applies only what it missed.

A follower searches with the vectors of one embedding model (this process's). When the read
model records another (a rebuild with a new EMBED_BACKEND was swapped in), searches fail with
`EmbeddingModelChanged` (503, saying to restart) instead of mixing the two."""

from __future__ import annotations

import logging
import shutil
import threading
from pathlib import Path
from typing import Any

import numpy as np

from projections.vectors import (
    EmbeddingModelChanged, changes_since, chunk_vectors, count_chunks, generation, recorded_model,
)

log = logging.getLogger("ledgerllm.vectors")
BUILD_WAIT_SECONDS = 600


class FaissFollower:
    def __init__(self, view: Any, model: str, registry_factory: Any, directory: Path | None = None) -> None:
        self.view = view
        self.model = model
        self._factory = registry_factory
        self._dir = directory
        self._lock = threading.RLock()
        self.generation = 0
        self.seq = 0
        self.indexes = registry_factory()
        self.other_model: str | None = None  # the read model's, when it is not ours

    def _generation_dir(self, gen: int) -> Path | None:
        return None if self._dir is None else self._dir / f"g{gen}"

    def sync(self) -> None:
        """Apply every change logged since the last sync (or start over after a rebuild)."""
        with self._lock:
            gen = generation(self.view)
            if gen != self.generation:
                self._start(gen)
            while True:
                changes = changes_since(self.view, self.seq)
                if not changes:
                    return
                if self._model_changed():
                    return
                self._apply(changes)
                self.seq = changes[-1]["seq"]

    def _model_changed(self) -> bool:
        recorded = recorded_model(self.view)
        self.other_model = recorded if recorded not in (None, self.model) else None
        if self.other_model:
            log.error("the vectors read model now holds %s vectors; this process embeds with %s: restart it",
                      self.other_model, self.model)
        return self.other_model is not None

    def _start(self, gen: int) -> None:
        self.generation, self.seq, self.indexes = gen, 0, self._factory()
        saved = self._generation_dir(gen)
        if saved is not None and saved.exists():
            position = self.indexes.load_all(saved)
            if position is None:  # missing or unreadable: rebuilt from the read model's log
                log.warning("faiss copy in %s unusable; rebuilding from the vectors read model", saved)
                self.indexes = self._factory()
            else:
                self.seq = position
                log.info("loaded faiss indexes of generation %d at change %d", gen, self.seq)

    def _apply(self, changes: list[dict[str, Any]]) -> None:
        pending: list[int] = []

        def flush() -> None:
            by_workspace: dict[str, tuple[list[int], list[np.ndarray]]] = {}
            for chunk_id, workspace, vector in chunk_vectors(self.view, self.model, pending):
                ids, vectors = by_workspace.setdefault(workspace, ([], []))
                ids.append(chunk_id)
                vectors.append(vector)
            for workspace, (ids, vectors) in by_workspace.items():
                self.indexes.get(workspace).add(np.asarray(ids, dtype=np.int64), np.vstack(vectors))
            pending.clear()

        for change in changes:
            if change["op"] == "add":
                pending.append(change["chunk_id"])
                continue
            flush()
            if change["op"] == "remove":
                self.indexes.get(change["workspace"]).remove(np.asarray([change["chunk_id"]], dtype=np.int64))
            elif change["op"] == "drop":
                self.indexes.drop(change["workspace"])
        flush()

    def search(self, workspace: str, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        self.sync()
        if self.other_model:
            raise EmbeddingModelChanged(self.other_model, self.model)
        with self._lock:
            index = self.indexes.get(workspace)
        return index.search(query, k)

    def count(self, workspace: str | None = None) -> int:
        return count_chunks(self.view, workspace)

    def save(self) -> None:
        """Persist the indexes with their position (on shutdown), dropping older generations.
        A background build of an approximate index is let finish first (up to 10 minutes at a
        million vectors): the next start loads it instead of building it again."""
        self.indexes.wait_ready(BUILD_WAIT_SECONDS)
        with self._lock:
            target = self._generation_dir(self.generation)
            if target is None or self.generation == 0:
                return
            self.indexes.save_all(target, self.seq)
            for old in target.parent.glob("g*"):
                if old != target:
                    shutil.rmtree(old, ignore_errors=True)

"""Cosine search over one workspace's vectors with faiss: exact while small, approximate above
a threshold, saved to disk with the log position it reflects.

Vectors are 384-d float32 and L2-normalized (normalized again here, to be safe), so inner
products are cosine similarities. Below ``approx_threshold`` vectors the index is exact
(``IndexIDMap2`` over ``IndexFlatIP``). From there on a background thread builds an IVF index
(``faiss_approx``) from a copy of the vectors while exact search goes on serving; changes
made meanwhile are logged and replayed onto it, then it replaces the exact one in one step
under the lock. It is rebuilt the same way when the workspace has grown 4x since, and the
index turns exact again below half the threshold.

``add`` is an upsert and ``remove`` ignores unknown ids, so applying a run of vector events
again to an index that already reflects some of them gives the same result: a follower may
resume from any saved position at or before the index's true one.

faiss is imported on first use, never at module import.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from infrastructure import faiss_approx
from infrastructure.faiss_common import (
    DIMENSIONS, ReadWriteLock, as_ids, as_vectors, get_faiss, serials, set_faiss_threads,
)
from infrastructure.files import atomic_write

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

__all__ = ["DIMENSIONS", "VectorIndex", "WorkspaceIndexes", "set_faiss_threads"]
FORMAT = 1
REBUILD_GROWTH = 4  # an approximate index is rebuilt (more clusters) once it holds 4x what it was built from
log = logging.getLogger("ledgerllm.vectors")


class VectorIndex:
    """One workspace's vectors: cosine search over int64 ids, exact or (above
    ``approx_threshold`` vectors; 0: never) approximate.

    Thread-safe: searches run concurrently (faiss releases the GIL while it scans), changes
    take the index exclusively; a background build holds no lock while it works.
    """

    def __init__(self, dimensions: int = DIMENSIONS, *, approx_threshold: int = 0, _index: Any = None) -> None:
        self.dimensions = dimensions
        self.approx_threshold = approx_threshold
        self._lock = ReadWriteLock()
        self._index = _index if _index is not None else faiss_approx.exact(dimensions)
        existing = faiss_approx.contents(self._index, with_vectors=False)[0]
        self._ids: set[int] = set(existing.tolist())
        if len(self._ids) != self._index.ntotal:
            raise ValueError("index holds duplicate ids")
        self._built_from = len(self._ids) if self.approximate else 0
        self._pending: list[tuple[str, Any, Any]] | None = None  # changes during a build
        self._builder: threading.Thread | None = None
        self._version = 0  # bumped by every change; lets WorkspaceIndexes skip clean saves
        self._serial = next(serials)

    @property
    def approximate(self) -> bool:
        return faiss_approx.is_approx(self._index)

    @property
    def clusters(self) -> tuple[int, int] | None:
        """(clusters, clusters each search scans) while approximate; None while exact."""
        index = self._index
        return (int(index.nlist), int(index.nprobe)) if faiss_approx.is_approx(index) else None

    # --- changes ---

    def add(self, ids: Any, vectors: Any) -> None:
        """Insert or replace: an id already present gets the new vector."""
        import numpy as np

        ids = as_ids(ids)
        vectors = as_vectors(vectors, self.dimensions)
        if len(ids) != len(vectors):
            raise ValueError(f"{len(ids)} ids for {len(vectors)} vectors")
        if len(ids) == 0:
            return
        if len(np.unique(ids)) != len(ids):
            raise ValueError("ids repeat within one add")
        with self._lock.write():
            self._upsert(self._index, ids, vectors, self._ids)
            if self._pending is not None:
                self._pending.append(("add", ids, vectors))
            self._version += 1
            self._maybe_rebuild()

    def remove(self, ids: Any) -> int:
        """Remove these ids (unknown ones are ignored); returns how many were removed."""
        import numpy as np

        ids = as_ids(ids)
        with self._lock.write():
            present = np.asarray(sorted({i for i in ids.tolist() if i in self._ids}), dtype=np.int64)
            if len(present) == 0:
                return 0
            removed = _remove(self._index, present)
            self._ids.difference_update(present.tolist())
            if self._pending is not None:
                self._pending.append(("remove", present, None))
            self._version += 1
            if self.approximate and len(self._ids) < self.approx_threshold // 2:
                self._to_exact()
            return removed

    def clear(self) -> None:
        with self._lock.write():
            self._index = faiss_approx.exact(self.dimensions)
            self._ids.clear()
            self._pending = None  # a running build's result is dropped
            self._version += 1

    @staticmethod
    def _upsert(index: Any, ids: np.ndarray, vectors: np.ndarray, held: set[int] | None) -> None:
        import numpy as np

        if held is None:
            _remove(index, ids)
        else:
            present = [i for i in ids.tolist() if i in held]
            if present:
                _remove(index, np.asarray(present, dtype=np.int64))
            held.update(ids.tolist())
        index.add_with_ids(vectors, ids)

    # --- switching between exact and approximate ---

    def _maybe_rebuild(self) -> None:
        """Start a background build if the index has outgrown its kind (write lock held)."""
        n = len(self._ids)
        if not self.approx_threshold or self._builder is not None or n < self.approx_threshold:
            return
        if self.approximate and n < REBUILD_GROWTH * self._built_from:
            return
        self._pending = []
        self._builder = threading.Thread(target=self._build, name="faiss-ivf-build", daemon=True)
        self._builder.start()

    def _build(self) -> None:
        built = False
        try:
            started = time.perf_counter()
            with self._lock.read():
                ids, vectors = faiss_approx.contents(self._index)
            index = faiss_approx.build(ids, vectors, self.dimensions)
            del vectors
            with self._lock.write():
                if self._pending is None:  # cleared meanwhile
                    return
                for op, change_ids, change_vectors in self._pending:
                    if op == "add":
                        self._upsert(index, change_ids, change_vectors, None)
                    else:
                        _remove(index, change_ids)
                self._index, self._built_from = index, len(ids)
                self._version += 1
                built = True
            log.info("approximate index of %d vectors (%d clusters) built in %.1f s", len(ids), index.nlist,
                     time.perf_counter() - started)
        except Exception:  # noqa: BLE001 - exact search keeps serving; logged with the traceback
            log.exception("building the approximate index failed; exact search goes on")
        finally:
            with self._lock.write():
                self._pending, self._builder = None, None
                if built:
                    self._maybe_rebuild()  # grown past 4x while this one was built (a catch-up): again

    def _to_exact(self) -> None:
        ids, vectors = faiss_approx.contents(self._index)
        index = faiss_approx.exact(self.dimensions)
        index.add_with_ids(vectors, ids)
        self._index, self._built_from = index, 0
        self._pending = None

    def upkeep(self) -> None:
        """Start the background build a loaded index may need (exact above the threshold)."""
        with self._lock.write():
            self._maybe_rebuild()

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Wait for background builds (if any, and one started by it) to finish; False if one
        still runs after ``timeout``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while (builder := self._builder) is not None:
            builder.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
            if builder.is_alive():
                return False
        return True

    # --- reads ---

    def search(self, query: Any, k: int) -> list[tuple[int, float]]:
        """The ``k`` nearest ids by cosine similarity, best first, as (id, similarity)."""
        q = as_vectors(query, self.dimensions)
        if len(q) != 1:
            raise ValueError(f"search takes one query vector, got {len(q)}")
        with self._lock.read():
            k = min(int(k), self._index.ntotal)
            if k <= 0:
                return []
            scores, ids = self._index.search(q, k)
        return [
            (int(i), float(min(1.0, max(-1.0, s))))
            for i, s in zip(ids[0].tolist(), scores[0].tolist(), strict=True)
            if i != -1
        ]

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def __contains__(self, chunk_id: object) -> bool:
        return chunk_id in self._ids

    def ids(self) -> np.ndarray:
        """Every id in the index (int64)."""
        with self._lock.read():
            return faiss_approx.contents(self._index, with_vectors=False)[0]

    @property
    def version(self) -> tuple[int, int]:
        """Changes with every add/remove/clear and switch of kind; differs between any two indexes."""
        return (self._serial, self._version)

    # --- persistence ---

    def save(self, path: Path, position: int) -> None:
        """Write the index to ``path`` and ``position``/count to ``path.json``, each atomically.

        The sidecar holds the index file's sha256, so an index from one save and a sidecar
        from another (a crash between the two renames) is detected by ``load`` as corrupt.
        """
        path = Path(path)
        with self._lock.read():
            blob = get_faiss().serialize_index(self._index)  # a uint8 numpy copy
            count = int(self._index.ntotal)
        meta = {
            "format": FORMAT,
            "position": int(position),
            "count": count,
            "dimensions": self.dimensions,
            "bytes": int(blob.nbytes),
            "sha256": hashlib.sha256(blob).hexdigest(),
        }
        atomic_write(path, blob)
        atomic_write(sidecar(path), json.dumps(meta, sort_keys=True).encode())

    @classmethod
    def load(cls, path: Path, approx_threshold: int = 0) -> tuple[VectorIndex, int] | None:
        """(index, position) saved at ``path``; None when either file is missing or corrupt."""
        import numpy as np

        path = Path(path)
        try:
            meta = json.loads(sidecar(path).read_bytes())
            blob = path.read_bytes()
            if not isinstance(meta, dict) or meta.get("format") != FORMAT:
                return None
            position, count, dims = meta["position"], meta["count"], meta["dimensions"]
            if not all(isinstance(v, int) and not isinstance(v, bool) for v in (position, count, dims)):
                return None
            if len(blob) != meta["bytes"] or hashlib.sha256(blob).hexdigest() != meta["sha256"]:
                return None
            faiss = get_faiss()
            index = faiss.deserialize_index(np.frombuffer(blob, dtype=np.uint8))
            if not isinstance(index, faiss.IndexIDMap2 | faiss.IndexIVFFlat) or index.d != dims or index.ntotal != count:
                return None
            if faiss_approx.is_approx(index):
                faiss_approx.prepare(index)
            return cls(dims, approx_threshold=approx_threshold, _index=index), position
        except (OSError, ValueError, KeyError, TypeError, RuntimeError):
            return None


def _remove(index: Any, ids: np.ndarray) -> int:
    faiss = get_faiss()
    # IVF's id hashtable takes only an array selector; the flat index, a batch (a set) is quicker.
    kind = faiss.IDSelectorArray if faiss_approx.is_approx(index) else faiss.IDSelectorBatch
    return int(index.remove_ids(kind(len(ids), faiss.swig_ptr(ids))))


def sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".json")  # ws-3.faiss -> ws-3.faiss.json

"""Exact cosine search per workspace with faiss, saved to disk with the log position it reflects.

Vectors are 384-d float32 and L2-normalized (normalized again here, to be safe), so the inner
product of ``IndexFlatIP`` is the cosine similarity. ``IndexIDMap2`` maps faiss rows to our
int64 chunk ids. Exact search is fast enough for 100k+ vectors per workspace.

``add`` is an upsert and ``remove`` ignores unknown ids, so applying a run of vector events
again to an index that already reflects some of them gives the same result: a follower may
resume from any saved position at or before the index's true one.

faiss is imported on first use, never at module import.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from infrastructure.files import atomic_write

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

DIMENSIONS = 384
FORMAT = 1
INDEX_SUFFIX = ".faiss"
SIDECAR_SUFFIX = ".json"  # appended: ws-3.faiss -> ws-3.faiss.json
MANIFEST = "manifest.json"

# One OpenMP thread per search. Measured on 2 cores, 100k x 384 vectors, one query, k=8:
# ~6 ms either way (p50 5.8 ms at 1 thread, 6.4 ms at 2): a flat scan of one query reads
# 150 MB and is bound by memory bandwidth, so a second thread only adds fork/join cost, and
# two concurrent searches share the bandwidth (~12 ms each) rather than finish sooner.
DEFAULT_FAISS_THREADS = 1

_faiss: Any = None
_serials = itertools.count(1)
_faiss_lock = threading.Lock()

WorkspaceId = int | str
_SLUG = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}$")


def _get_faiss() -> Any:
    """Import faiss once and set its OpenMP thread count."""
    global _faiss
    if _faiss is None:
        with _faiss_lock:
            if _faiss is None:
                import faiss

                faiss.omp_set_num_threads(DEFAULT_FAISS_THREADS)
                _faiss = faiss
    return _faiss


def set_faiss_threads(n: int) -> None:
    """OpenMP threads faiss may use per call (process-wide)."""
    if n < 1:
        raise ValueError("faiss threads must be >= 1")
    _get_faiss().omp_set_num_threads(n)


def _as_ids(ids: Any) -> np.ndarray:
    import numpy as np

    arr = np.asarray(ids)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1:
        raise ValueError(f"ids must be 1-d, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"ids must be integers, got {arr.dtype}")
    return np.ascontiguousarray(arr, dtype=np.int64)


def _as_vectors(vectors: Any, dims: int) -> np.ndarray:
    import numpy as np

    arr = np.asarray(vectors, dtype=np.float32)
    if arr.ndim == 1:
        arr = arr.reshape(1, -1)
    if arr.ndim != 2 or arr.shape[1] != dims:
        raise ValueError(f"vectors must have shape (n, {dims}), got {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError("vectors must be finite")
    # A copy: faiss normalizes in place, and the caller's array stays untouched.
    arr = np.array(arr, dtype=np.float32, order="C", copy=True)
    _get_faiss().normalize_L2(arr)
    return arr


class _ReadWriteLock:
    """Many readers or one writer; a waiting writer blocks new readers (no starvation).
    The writer side is re-entrant for the thread holding it, and may take the read side."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._writer: int | None = None
        self._writer_depth = 0
        self._writers_waiting = 0

    @contextmanager
    def read(self) -> Iterator[None]:
        me = threading.get_ident()
        if self._writer == me:  # the writer reading its own state
            yield
            return
        with self._cond:
            while self._writer is not None or self._writers_waiting:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if self._readers == 0:
                    self._cond.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        me = threading.get_ident()
        with self._cond:
            if self._writer == me:
                self._writer_depth += 1
            else:
                self._writers_waiting += 1
                try:
                    while self._writer is not None or self._readers:
                        self._cond.wait()
                finally:
                    self._writers_waiting -= 1
                self._writer, self._writer_depth = me, 1
        try:
            yield
        finally:
            with self._cond:
                self._writer_depth -= 1
                if self._writer_depth == 0:
                    self._writer = None
                    self._cond.notify_all()


class VectorIndex:
    """One workspace's vectors: exact cosine search over int64 ids.

    Thread-safe: searches run concurrently (faiss releases the GIL while it scans), changes
    take the index exclusively.
    """

    def __init__(self, dimensions: int = DIMENSIONS, *, _index: Any = None) -> None:
        import numpy as np

        faiss = _get_faiss()
        self.dimensions = dimensions
        self._lock = _ReadWriteLock()
        self._index = _index if _index is not None else faiss.IndexIDMap2(faiss.IndexFlatIP(dimensions))
        if _index is not None:
            existing = faiss.vector_to_array(_index.id_map) if _index.ntotal else np.zeros(0, np.int64)
            self._ids: set[int] = set(existing.tolist())
            if len(self._ids) != _index.ntotal:
                raise ValueError("index holds duplicate ids")
        else:
            self._ids = set()
        self._version = 0  # bumped by every change; lets WorkspaceIndexes skip clean saves
        self._serial = next(_serials)  # tells indexes apart (unlike id(), never reused)

    # --- changes ---

    def add(self, ids: Any, vectors: Any) -> None:
        """Insert or replace: an id already present gets the new vector."""
        import numpy as np

        ids = _as_ids(ids)
        vectors = _as_vectors(vectors, self.dimensions)
        if len(ids) != len(vectors):
            raise ValueError(f"{len(ids)} ids for {len(vectors)} vectors")
        if len(ids) == 0:
            return
        if len(np.unique(ids)) != len(ids):
            raise ValueError("ids repeat within one add")
        with self._lock.write():
            present = [i for i in ids.tolist() if i in self._ids]
            if present:
                self._remove_present(np.asarray(present, dtype=np.int64))
            self._index.add_with_ids(vectors, ids)
            self._ids.update(ids.tolist())
            self._version += 1

    def remove(self, ids: Any) -> int:
        """Remove these ids (unknown ones are ignored); returns how many were removed."""
        import numpy as np

        ids = _as_ids(ids)
        with self._lock.write():
            present = np.asarray(sorted({i for i in ids.tolist() if i in self._ids}), dtype=np.int64)
            if len(present) == 0:
                return 0
            removed = self._remove_present(present)
            self._version += 1
            return removed

    def clear(self) -> None:
        with self._lock.write():
            self._index.reset()
            self._ids.clear()
            self._version += 1

    def _remove_present(self, ids: np.ndarray) -> int:
        faiss = _get_faiss()
        removed = int(self._index.remove_ids(faiss.IDSelectorBatch(len(ids), faiss.swig_ptr(ids))))
        self._ids.difference_update(ids.tolist())
        return removed

    # --- reads ---

    def search(self, query: Any, k: int) -> list[tuple[int, float]]:
        """The ``k`` nearest ids by cosine similarity, best first, as (id, similarity)."""
        q = _as_vectors(query, self.dimensions)
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
        """Every id in the index (int64, in storage order)."""
        import numpy as np

        with self._lock.read():
            if self._index.ntotal == 0:
                return np.zeros(0, dtype=np.int64)
            return _get_faiss().vector_to_array(self._index.id_map).astype(np.int64, copy=False)

    @property
    def version(self) -> tuple[int, int]:
        """Changes with every add/remove/clear; differs between any two indexes."""
        return (self._serial, self._version)

    # --- persistence ---

    def save(self, path: Path, position: int) -> None:
        """Write the index to ``path`` and ``position``/count to ``path.json``, each atomically.

        The sidecar holds the index file's sha256, so an index from one save and a sidecar
        from another (a crash between the two renames) is detected by ``load`` as corrupt.
        """
        path = Path(path)
        with self._lock.read():
            blob = _get_faiss().serialize_index(self._index)  # a uint8 numpy copy
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
        atomic_write(_sidecar(path), json.dumps(meta, sort_keys=True).encode())

    @classmethod
    def load(cls, path: Path) -> tuple[VectorIndex, int] | None:
        """(index, position) saved at ``path``; None when either file is missing or corrupt."""
        import numpy as np

        path = Path(path)
        try:
            meta = json.loads(_sidecar(path).read_bytes())
            blob = path.read_bytes()
            if not isinstance(meta, dict) or meta.get("format") != FORMAT:
                return None
            position, count, dims = meta["position"], meta["count"], meta["dimensions"]
            if not all(isinstance(v, int) and not isinstance(v, bool) for v in (position, count, dims)):
                return None
            if len(blob) != meta["bytes"] or hashlib.sha256(blob).hexdigest() != meta["sha256"]:
                return None
            faiss = _get_faiss()
            index = faiss.deserialize_index(np.frombuffer(blob, dtype=np.uint8))
            if not isinstance(index, faiss.IndexIDMap2) or index.d != dims or index.ntotal != count:
                return None
            return cls(dims, _index=index), position
        except (OSError, ValueError, KeyError, TypeError, RuntimeError):
            return None


class WorkspaceIndexes:
    """One ``VectorIndex`` per workspace, created on first ``get``. Thread-safe.

    On disk (``save_all``/``load_all``): ``<dir>/ws-<id>.faiss`` (+ ``.json`` sidecar) per
    workspace and ``<dir>/manifest.json`` naming the workspaces and the position they all
    reflect. Index files are written before the manifest and stale ones deleted after it, so
    the manifest never names a file that a later save removed.
    """

    def __init__(self, dimensions: int = DIMENSIONS) -> None:
        self.dimensions = dimensions
        self._lock = threading.Lock()
        self._indexes: dict[WorkspaceId, VectorIndex] = {}
        self._saved_versions: dict[WorkspaceId, tuple[int, int]] = {}  # workspace -> index.version

    def get(self, workspace_id: WorkspaceId) -> VectorIndex:
        _check_workspace_id(workspace_id)
        with self._lock:
            index = self._indexes.get(workspace_id)
            if index is None:
                index = self._indexes[workspace_id] = VectorIndex(self.dimensions)
            return index

    def peek(self, workspace_id: WorkspaceId) -> VectorIndex | None:
        """The workspace's index if it has one, without creating it."""
        with self._lock:
            return self._indexes.get(workspace_id)

    def drop(self, workspace_id: WorkspaceId) -> bool:
        with self._lock:
            self._saved_versions.pop(workspace_id, None)
            return self._indexes.pop(workspace_id, None) is not None

    def clear(self) -> None:
        with self._lock:
            self._indexes.clear()
            self._saved_versions.clear()

    def workspace_ids(self) -> list[WorkspaceId]:
        with self._lock:
            return list(self._indexes)

    def __len__(self) -> int:
        with self._lock:
            return len(self._indexes)

    def __contains__(self, workspace_id: object) -> bool:
        with self._lock:
            return workspace_id in self._indexes

    def save_all(self, directory: Path, position: int) -> None:
        """Save every index (those unchanged since their last save are not rewritten), then
        the manifest with ``position``, then delete files of workspaces no longer held.

        Every change up to ``position`` must already be applied when this starts; changes
        made while it runs may or may not be saved, which is harmless: they come after
        ``position`` and a follower re-applies them (add is an upsert, remove idempotent).
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        with self._lock:
            items = list(self._indexes.items())
        entries = []
        for workspace_id, index in items:
            file = directory / _file_name(workspace_id)
            version = index.version  # read before saving: a change during save forces the next one
            if self._saved_versions.get(workspace_id) != version or not file.exists():
                index.save(file, position)
                with self._lock:
                    if self._indexes.get(workspace_id) is index:
                        self._saved_versions[workspace_id] = version
            entries.append({"id": workspace_id, "file": file.name})
        manifest = {"format": FORMAT, "position": int(position), "dimensions": self.dimensions, "workspaces": entries}
        atomic_write(directory / MANIFEST, json.dumps(manifest, sort_keys=True).encode())
        keep = {e["file"] for e in entries}
        for stale in _index_files(directory):
            if stale.name not in keep:
                stale.unlink(missing_ok=True)
                _sidecar(stale).unlink(missing_ok=True)

    def load_all(self, directory: Path) -> int | None:
        """Replace the held indexes with those saved in ``directory``; returns the position to
        resume following from. None (and nothing held) when there is no manifest or any
        named index is missing or corrupt: rebuild from the vectors read model then.
        Call it before any ``save_all`` into the same directory starts (it deletes the temp
        files a killed save left behind)."""
        directory = Path(directory)
        _remove_leftover_temps(directory)
        try:
            manifest = json.loads((directory / MANIFEST).read_bytes())
            if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
                return self._loaded({}, None)
            position = manifest["position"]
            if not isinstance(position, int) or manifest.get("dimensions") != self.dimensions:
                return self._loaded({}, None)
            loaded: dict[WorkspaceId, VectorIndex] = {}
            for entry in manifest["workspaces"]:
                workspace_id, name = entry["id"], entry["file"]
                _check_workspace_id(workspace_id)
                if name != _file_name(workspace_id):
                    return self._loaded({}, None)
                result = VectorIndex.load(directory / name)
                if result is None or result[0].dimensions != self.dimensions:
                    return self._loaded({}, None)
                loaded[workspace_id] = result[0]
        except (OSError, ValueError, KeyError, TypeError):
            return self._loaded({}, None)
        return self._loaded(loaded, position)

    def _loaded(self, loaded: dict[WorkspaceId, VectorIndex], position: int | None) -> int | None:
        with self._lock:
            self._indexes = dict(loaded)
            # Files on disk match what was just loaded: no need to rewrite them.
            self._saved_versions = {w: i.version for w, i in loaded.items()}
        return position


def _check_workspace_id(workspace_id: object) -> None:
    if isinstance(workspace_id, bool) or not isinstance(workspace_id, int | str):
        raise TypeError(f"workspace id must be an int or str, got {type(workspace_id).__name__}")
    if isinstance(workspace_id, str) and not _SLUG.match(workspace_id):
        raise ValueError(f"workspace id {workspace_id!r} must be 1-128 of A-Z a-z 0-9 _ - .")


def _file_name(workspace_id: WorkspaceId) -> str:
    if isinstance(workspace_id, int):
        return f"ws-{workspace_id}{INDEX_SUFFIX}"
    return f"wss-{workspace_id}{INDEX_SUFFIX}"


def _index_files(directory: Path) -> Iterable[Path]:
    for path in directory.iterdir():
        if path.name.endswith(INDEX_SUFFIX) and path.name.startswith(("ws-", "wss-")):
            yield path


def _remove_leftover_temps(directory: Path) -> None:
    """Temp files of a save that was killed midway (one index can be hundreds of MB)."""
    try:
        paths = list(directory.iterdir())
    except OSError:
        return
    for path in paths:
        name = path.name
        if name.startswith((".ws-", ".wss-", f".{MANIFEST}.")) and name.endswith(".tmp"):
            path.unlink(missing_ok=True)


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + SIDECAR_SUFFIX)

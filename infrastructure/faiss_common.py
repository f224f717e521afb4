"""What the faiss modules share: importing faiss once (with its thread count), checking ids
and vectors on their way in, and a readers-writer lock. faiss is imported on first use."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

DIMENSIONS = 384

# One OpenMP thread per search. Measured on 2 cores, 100k x 384 vectors, one query, k=8:
# ~6 ms either way (p50 5.8 ms at 1 thread, 6.4 ms at 2): a flat scan of one query reads
# 150 MB and is bound by memory bandwidth, so a second thread only adds fork/join cost, and
# two concurrent searches share the bandwidth (~12 ms each) rather than finish sooner.
DEFAULT_FAISS_THREADS = 1

_faiss: Any = None
serials = itertools.count(1)  # tells indexes apart (unlike id(), never reused)
_faiss_lock = threading.Lock()


def get_faiss() -> Any:
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
    get_faiss().omp_set_num_threads(n)


def as_ids(ids: Any) -> np.ndarray:
    import numpy as np

    arr = np.asarray(ids)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1:
        raise ValueError(f"ids must be 1-d, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"ids must be integers, got {arr.dtype}")
    return np.ascontiguousarray(arr, dtype=np.int64)


def as_vectors(vectors: Any, dims: int) -> np.ndarray:
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
    get_faiss().normalize_L2(arr)
    return arr


class ReadWriteLock:
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

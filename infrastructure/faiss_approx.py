"""Approximate cosine search for large workspaces: faiss ``IndexIVFFlat`` over inner products.

The vectors are split into ``nlist`` clusters (k-means on a seeded sample); a search scans
the ``nprobe`` clusters nearest the query instead of every vector. IVF-Flat keeps the full
vectors (no compression), so a score it returns is the exact cosine, and supports adding and
removing single ids (a hashtable maps ids to their slots), so it follows the vectors read
model like the exact index does. Built off the lock, in a background thread, by ``VectorIndex``.
"""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING, Any

from infrastructure.faiss_common import DEFAULT_FAISS_THREADS, get_faiss

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

# nlist ~ 4 sqrt(n): 1,264 clusters at 100k vectors, 4,000 at 1M. Training sees 40 vectors per
# cluster. Measured at 100k with real embedded queries (bench/vector_scale.py's vectors): recall@10
# 0.97 at 16 probes and 0.99 at 24-32, against 0.93 / 0.96 / 0.97 with 2 sqrt(n) clusters.
LISTS_PER_SQRT = 4
MIN_LISTS, MAX_LISTS = 64, 16_384
TRAIN_PER_LIST = 40
TRAIN_ITERATIONS = 10
# Clusters scanned per search: 1/40 of them, at least 64, and enough to cover ~16k vectors.
# bench/vector_scale.py's vectors, recall@10 against exact with 200 new queries: at 1M (3,577
# clusters) 90 probes give 0.998 (~25k vectors scanned, 2.6 ms); at 100k (1,264 clusters) 64 probes
# gave 0.938 (0.899 and 0.992 on other runs' vectors), 128 0.980, 192 0.993, 256 0.996 (2.2 ms);
# at 50k 64 gave 0.949, 192 0.993. So a small index scans a larger share.
PROBE_FRACTION = 1 / 40
MIN_PROBES = 64
MIN_SCANNED = 16_384
SEED = 1234


def list_count(n: int) -> int:
    """Clusters for n vectors; never more than k-means can train well (39 points each)."""
    wanted = max(MIN_LISTS, min(MAX_LISTS, int(LISTS_PER_SQRT * math.sqrt(max(n, 1)))))
    return max(1, min(wanted, n // 39))


def probe_count(nlist: int, n: int) -> int:
    """Clusters a search scans in an index of `n` vectors in `nlist` clusters."""
    covering = math.ceil(nlist * MIN_SCANNED / max(n, 1))  # clusters hold n / nlist vectors on average
    return min(nlist, max(MIN_PROBES, math.ceil(nlist * PROBE_FRACTION), covering))


def is_approx(index: Any) -> bool:
    return isinstance(index, get_faiss().IndexIVFFlat)


def build(ids: np.ndarray, vectors: np.ndarray, dimensions: int) -> Any:
    """An IVF-Flat index holding ``vectors`` under ``ids`` (unit rows, float32, C order)."""
    import numpy as np

    faiss = get_faiss()
    n = len(ids)
    nlist = list_count(n)
    rng = np.random.default_rng(SEED)
    sample = vectors[np.sort(rng.choice(n, size=min(n, nlist * TRAIN_PER_LIST), replace=False))]
    quantizer = faiss.IndexFlatIP(dimensions)
    index = faiss.IndexIVFFlat(quantizer, dimensions, nlist, faiss.METRIC_INNER_PRODUCT)
    index.cp.niter = TRAIN_ITERATIONS
    index.cp.seed = SEED
    # Every core for training and adding (searches of one query use one thread either way).
    faiss.omp_set_num_threads(_cores())
    try:
        index.train(np.ascontiguousarray(sample))
        index.set_direct_map_type(faiss.DirectMap.Hashtable)
        for start in range(0, n, 100_000):
            index.add_with_ids(vectors[start:start + 100_000], ids[start:start + 100_000])
    finally:
        faiss.omp_set_num_threads(DEFAULT_FAISS_THREADS)
    prepare(index)
    return index


def _cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def prepare(index: Any) -> None:
    """Settings a built or loaded IVF index searches with."""
    index.nprobe = probe_count(index.nlist, int(index.ntotal))
    index.parallel_mode = 0


def exact(dimensions: int) -> Any:
    faiss = get_faiss()
    return faiss.IndexIDMap2(faiss.IndexFlatIP(dimensions))


def contents(index: Any, with_vectors: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """(ids, vectors) copied out of an exact (IDMap2 over flat) or an IVF-Flat index."""
    import numpy as np

    faiss = get_faiss()
    d, n = index.d, int(index.ntotal)
    if n == 0:
        return np.zeros(0, np.int64), np.zeros((0, d), np.float32) if with_vectors else None
    if not is_approx(index):
        ids = faiss.vector_to_array(index.id_map).astype(np.int64)
        if not with_vectors:
            return ids, None
        flat = faiss.downcast_index(index.index)
        return ids, faiss.rev_swig_ptr(flat.get_xb(), n * d).reshape(n, d).copy()
    lists = index.invlists
    id_parts, vector_parts = [], []
    for number in range(index.nlist):
        size = lists.list_size(number)
        if size == 0:
            continue
        id_parts.append(faiss.rev_swig_ptr(lists.get_ids(number), size).copy())
        if with_vectors:
            raw = faiss.rev_swig_ptr(lists.get_codes(number), size * d * 4)
            vector_parts.append(raw.view(np.float32).reshape(size, d).copy())
    ids = np.concatenate(id_parts).astype(np.int64)
    return ids, (np.concatenate(vector_parts) if with_vectors else None)

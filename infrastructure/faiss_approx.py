"""Approximate cosine search for large workspaces: faiss ``IndexIVFFlat`` over inner products.

The vectors are split into ``nlist`` clusters (k-means on a seeded sample); a search scans
the ``nprobe`` clusters nearest the query instead of every vector. IVF-Flat keeps the full
vectors (no compression), so a score it returns is the exact cosine, and supports adding and
removing single ids (a hashtable maps ids to their slots), so it follows the vectors read
model like the exact index does. Built off the lock, in a background thread, by ``VectorIndex``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from infrastructure.faiss_common import get_faiss

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

# nlist ~ 2 sqrt(n): 2,000 clusters at 1M vectors. Training sees 40 vectors per cluster.
LISTS_PER_SQRT = 2
MIN_LISTS, MAX_LISTS = 64, 16_384
TRAIN_PER_LIST = 40
TRAIN_ITERATIONS = 10
# Clusters scanned per search: 1/32 of them (62 of 2,000 at 1M: ~31k vectors, ~2-3 ms on one
# core), at least 16. Measured by bench/ingest_and_search.py: recall@10 against exact search.
PROBE_FRACTION = 1 / 32
MIN_PROBES = 16
SEED = 1234


def list_count(n: int) -> int:
    """Clusters for n vectors; never more than k-means can train well (39 points each)."""
    wanted = max(MIN_LISTS, min(MAX_LISTS, int(LISTS_PER_SQRT * math.sqrt(max(n, 1)))))
    return max(1, min(wanted, n // 39))


def probe_count(nlist: int) -> int:
    return min(nlist, max(MIN_PROBES, math.ceil(nlist * PROBE_FRACTION)))


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
    index.train(np.ascontiguousarray(sample))
    index.set_direct_map_type(faiss.DirectMap.Hashtable)
    for start in range(0, n, 100_000):
        index.add_with_ids(vectors[start:start + 100_000], ids[start:start + 100_000])
    prepare(index)
    return index


def prepare(index: Any) -> None:
    """Settings a built or loaded IVF index searches with."""
    index.nprobe = probe_count(index.nlist)
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

"""Approximate search in a large workspace, with real faiss: the index turns IVF in the
background above its threshold (exact search serves meanwhile), keeps every change made during
the build, agrees with exact search, turns exact again when the workspace shrinks, and is saved
and loaded as it is."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from infrastructure.faiss_index import VectorIndex
from infrastructure.faiss_store import WorkspaceIndexes

N = 20_000
THRESHOLD = 10_000


def _clustered(n: int, seed: int) -> np.ndarray:
    """Unit vectors around 200 centres, like embeddings of text on a few topics."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((200, 384)).astype(np.float32)
    v = centres[rng.integers(0, 200, n)] + 0.6 * rng.standard_normal((n, 384)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _recall(index: VectorIndex, vectors: np.ndarray, ids: np.ndarray, queries: np.ndarray) -> float:
    found = []
    for q in queries:
        truth = set(ids[np.argsort(-(vectors @ q))[:10]].tolist())
        found.append(len(truth & {i for i, _ in index.search(q, 10)}) / 10)
    return float(np.mean(found))


def test_large_index_turns_approximate_in_the_background_and_keeps_every_change() -> None:
    vectors = _clustered(N + 500, 1)
    ids = np.arange(1, N + 501, dtype=np.int64)
    index = VectorIndex(approx_threshold=THRESHOLD)
    index.add(ids[:THRESHOLD - 1], vectors[:THRESHOLD - 1])
    assert not index.approximate and index.wait_ready(0)  # below the threshold: nothing to build
    index.add(ids[THRESHOLD - 1:N], vectors[THRESHOLD - 1:N])  # crosses it: a build starts
    # Changes right away, most of them while the build runs: all must survive the switch.
    for start in range(N, N + 500, 50):
        index.add(ids[start:start + 50], vectors[start:start + 50])
        assert index.search(vectors[start], 1)[0][0] == ids[start]  # searchable at once
    index.remove(ids[:100])
    index.add(ids[200:201], vectors[0:1])  # upsert: id 201 now has vector 0
    assert index.wait_ready(300)
    assert index.approximate and len(index) == N + 400
    assert 1 not in index and 100 not in index and 101 in index
    assert index.search(vectors[0], 1)[0][0] == 201
    held = ids[100:N + 500]
    held_vectors = vectors[100:N + 500].copy()
    held_vectors[200 - 100] = vectors[0]
    assert _recall(index, held_vectors, held, _clustered(100, 2)) >= 0.95
    assert all(i not in range(1, 101) for i, _ in index.search(vectors[5], 50))


def test_shrinking_below_half_the_threshold_turns_exact_again() -> None:
    vectors = _clustered(THRESHOLD, 3)
    ids = np.arange(THRESHOLD, dtype=np.int64)
    index = VectorIndex(approx_threshold=THRESHOLD)
    index.add(ids, vectors)
    assert index.wait_ready(300) and index.approximate
    index.remove(ids[:THRESHOLD // 2 + 1])
    assert not index.approximate and len(index) == THRESHOLD // 2 - 1
    q = vectors[-1]
    assert index.search(q, 1)[0][0] == ids[-1]


def test_approximate_index_is_saved_and_loaded_as_it_is(tmp_path: Path) -> None:
    vectors = _clustered(N, 4)
    ids = np.arange(N, dtype=np.int64) * 3
    indexes = WorkspaceIndexes(approx_threshold=THRESHOLD)
    indexes.get(7).add(ids, vectors)
    indexes.wait_ready(300)
    assert indexes.get(7).approximate
    before = [indexes.get(7).search(q, 10) for q in vectors[:20]]
    indexes.save_all(tmp_path, 99)
    loaded = WorkspaceIndexes(approx_threshold=THRESHOLD)
    assert loaded.load_all(tmp_path) == 99
    index = loaded.get(7)
    assert index.approximate and len(index) == N and sorted(index.ids().tolist()) == ids.tolist()
    assert [index.search(q, 10) for q in vectors[:20]] == before
    index.remove(ids[:10])
    assert len(index) == N - 10 and ids[0] not in index


def test_an_exact_index_loaded_above_the_threshold_is_built_in_the_background(tmp_path: Path) -> None:
    vectors = _clustered(N, 5)
    exact = WorkspaceIndexes()  # approx_threshold 0: never approximate
    exact.get("big").add(np.arange(N), vectors)
    exact.save_all(tmp_path, 5)
    assert not exact.get("big").approximate
    loaded = WorkspaceIndexes(approx_threshold=THRESHOLD)
    assert loaded.load_all(tmp_path) == 5
    assert loaded.get("big").search(vectors[3], 1)[0][0] == 3  # serves at once, exact
    loaded.wait_ready(300)
    assert loaded.get("big").approximate and loaded.get("big").search(vectors[3], 1)[0][0] == 3


def test_small_approximate_indexes_scan_a_larger_share_of_their_vectors() -> None:
    """At least ~16k vectors are scanned per search (recall@10 0.94 -> 0.99 at 100k), and a
    large index still scans 1/40 of its clusters."""
    from infrastructure.faiss_approx import list_count, probe_count

    for n, probes in ((50_000, 293), (100_000, 208), (1_000_000, 100)):
        nlist = list_count(n)
        assert probe_count(nlist, n) == probes, n
        assert probe_count(nlist, n) * n / nlist >= 16_384
    assert probe_count(64, 3_000) == 64  # never more clusters than there are

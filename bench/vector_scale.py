"""Vector search at scale, in one process (run by ingest_and_search.py, one child per size, so
its memory is this process's alone): N vectors in one workspace's `VectorIndex`, exact and
approximate, searched with new queries embedded by the server's embedder.

The N vectors are made from real embeddings (`--base`, a .npy of unit vectors of real chunks):
each is a base vector plus part of another plus noise, normalized, so the index holds
neighbourhoods like real text has (uniform random vectors in 384-d have none, and no
approximate index can beat a scan on them). Queries are new texts, embedded one at a time.

Prints one JSON object: build/load times, memory (VmRSS/VmHWM), per-query embed and search
times, recall@10 of the approximate index against exact search.

  .venv/bin/python bench/vector_scale.py --n 1000000 --base base.npy [--queries 200] [--seed 1]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from corpus import Prose  # noqa: E402


def memory_mib() -> dict[str, float]:
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            out[line.split(":")[0]] = int(line.split()[1]) / 1024
    return out


def synthetic(base: np.ndarray, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.empty((n, base.shape[1]), dtype=np.float32)
    for start in range(0, n, 100_000):
        m = min(100_000, n - start)
        a, b = rng.integers(0, len(base), m), rng.integers(0, len(base), m)
        noise = rng.standard_normal((m, base.shape[1]), dtype=np.float32)
        noise /= np.linalg.norm(noise, axis=1, keepdims=True)
        v = base[a] + (0.6 * rng.random((m, 1), dtype=np.float32)) * base[b] + 0.5 * noise
        out[start:start + m] = v / np.linalg.norm(v, axis=1, keepdims=True)
    return out


def queries(n: int, seed: int) -> list[str]:
    gen, seen, out = Prose(f"{seed}:scale-queries"), set(), []
    while len(out) < n:
        q = gen.query()
        if q not in seen:
            seen.add(q)
            out.append(q)
    return out


def measure(args: argparse.Namespace) -> dict:
    from infrastructure.embedder import LocalEmbedder
    from infrastructure.faiss_index import VectorIndex

    result: dict = {"n": args.n, "memory_start": memory_mib()}
    embedder = LocalEmbedder().warm()
    embedder.embed(["warm up"])
    vectors = synthetic(np.load(args.base), args.n, args.seed)
    ids = np.arange(1, args.n + 1, dtype=np.int64)
    exact = VectorIndex()
    t = time.perf_counter()
    for start in range(0, args.n, 100_000):
        exact.add(ids[start:start + 100_000], vectors[start:start + 100_000])
    result["exact_add_s"] = time.perf_counter() - t
    approx = VectorIndex(approx_threshold=min(args.n, args.threshold))
    t = time.perf_counter()
    for start in range(0, args.n, 100_000):
        approx.add(ids[start:start + 100_000], vectors[start:start + 100_000])
    result["approx_add_s"] = time.perf_counter() - t
    approx.wait_ready()
    result["approx_build_s"] = time.perf_counter() - t
    result["approximate"] = approx.approximate
    result["nlist"], result["nprobe"] = approx.clusters or (0, 0)
    del vectors
    result["memory_built"] = memory_mib()
    result.update(_searches(embedder, exact, approx, queries(args.queries, args.seed)))
    del exact
    result["memory_approx_only"] = memory_mib()
    result.update(_save_load(approx))
    return result


def _searches(embedder, exact, approx, texts: list[str]) -> dict:
    embed_ms, exact_ms, approx_ms, recall = [], [], [], []
    for text in texts:
        t = time.perf_counter()
        q = embedder.embed([text])[0]
        embed_ms.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        truth = {i for i, _ in exact.search(q, 10)}
        exact_ms.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        found = {i for i, _ in approx.search(q, 10)}
        approx_ms.append((time.perf_counter() - t) * 1000)
        recall.append(len(truth & found) / 10)
    return {"embed_ms": embed_ms, "exact_ms": exact_ms, "approx_ms": approx_ms, "recall10": float(np.mean(recall))}


def _save_load(index) -> dict:
    from infrastructure.faiss_index import VectorIndex

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ws-1.faiss"
        t = time.perf_counter()
        index.save(path, 1)
        save_s = time.perf_counter() - t
        size = path.stat().st_size
        t = time.perf_counter()
        loaded = VectorIndex.load(path, approx_threshold=1)
        load_s = time.perf_counter() - t
    assert loaded is not None and loaded[0].approximate and len(loaded[0]) == len(index)
    return {"save_s": save_s, "load_s": load_s, "file_mib": size / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--base", type=Path, required=True)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threshold", type=int, default=50_000, help="VECTOR_APPROX_THRESHOLD")
    args = parser.parse_args()
    print(json.dumps(measure(args)))


if __name__ == "__main__":
    main()

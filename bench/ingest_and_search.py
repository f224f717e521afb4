"""Benchmark: document ingest through the HTTP API against raw encodes, retrieval quality of the
fast embedding backend, vector search over HTTP at 100k chunks, and the index at 100k and 1M.

1. Ingest. A seeded corpus of unique English-like text (~100 documents, at least --chunks chunks
   of 200 cl100k tokens with 20 overlap, the server's default chunking) is uploaded sequentially
   from one client with `POST /api/v1/document/raw-text` + `addToWorkspaces` to a fresh server
   per backend in --server-backends (default: the server's default, openvino). Around that, in
   this process with no server running, it times raw `SentenceTransformer.encode` (torch fp32,
   batch 64, normalized, the server's thread count) and the fast backend's own embed of exactly
   the same chunks, before and after, and reports API / raw torch (aim >= 2.5) and API / raw fast.
   Quality: recall@1/@5 of torch and of the fast backend on the labelled retrieval set the tests
   use (harness/retrieval_set.py), and the fast vectors' mean cosine to torch's (aims:
   recall@5 >= 0.99 x torch's, cosine >= 0.99).
2. Search over HTTP at --search-chunks (100,000) chunks. The embedding cache of a fresh DATA_DIR
   is pre-filled with seeded random unit vectors for every chunk, the documents are uploaded
   (ingest costs chunking and SQL only), the server is stopped (it saves its faiss index, waiting
   for a background build) and started again (the restart time includes loading the index).
   Then --queries searches with distinct query texts (each embedded: a new query) and as many
   of one repeated query (its vector cached); p50/p99 in ms at the client.
3. The index at scale (bench/vector_scale.py, a child process per size: 100k, and 1M with
   --million). Vectors made from the real fast embeddings of phase 1 (see that file), exact and
   approximate indexes, new queries embedded one at a time: embed and search ms, recall@10 of
   the approximate index against exact search, build/save/load time, memory of the process.

Run from the repo root:  .venv/bin/python bench/ingest_and_search.py [--million] [--chunks 2000]
    [--search-chunks 100000] [--queries 200] [--seed 1] [--server-backends openvino,torch] [--skip-search]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

# Offline, before anything imports huggingface libraries (the server does the same for itself).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from bench_server import BenchError, Server  # noqa: E402 - after the offline settings above
from corpus import CHUNK_OVERLAP, CHUNK_SIZE  # noqa: E402
from ingest_phases import BATCH_SIZE, TOP_N, pct, phase_ingest, phase_scale, phase_search, torch_threads  # noqa: E402

AIM_RATIO = 2.5


# --- main -----------------------------------------------------------------------------------
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for pkg in ("torch", "sentence-transformers", "openvino", "faiss-cpu", "tiktoken", "litestar"):
        try:
            out.append(f"{pkg} {version(pkg)}")
        except PackageNotFoundError:
            pass
    return ", ".join(out)


def report(args: argparse.Namespace, ingest: dict[str, Any], search: dict[str, Any] | None,
           scale: list[dict[str, Any]], wall: float, load_before: str) -> None:
    print()
    print(f"machine: nproc={os.cpu_count()} (usable {torch_threads()}), {cpu_model()}, "
          f"python={platform.python_version()}, {platform.platform()}")
    print(f"         load average before the run {load_before}, after {loadavg()} (1/5/15 min; this run "
          f"itself keeps ~1-2 cores busy)")
    print(f"         {versions()}")
    print(f"settings: chunking {CHUNK_SIZE} tokens / {CHUNK_OVERLAP} overlap (cl100k); server: 1 worker, "
          f"LOG_LEVEL=WARNING, SQLite; one sequential keep-alive client; seed {args.seed}; raw encodes: batch "
          f"{BATCH_SIZE}, {ingest['torch_threads']} threads, untimed warm-up")
    report_ingest(ingest)
    if search is not None:
        report_search(search)
    for row in scale:
        report_scale(row)
    print()
    print(f"total run time: {wall:.0f} s")
    print(f"re-run: .venv/bin/python bench/ingest_and_search.py --chunks {args.chunks} --search-chunks "
          f"{args.search_chunks} --queries {args.queries} --seed {args.seed} --server-backends "
          f"{','.join(args.server_backends)}{' --million' if args.million else ''}")


def report_ingest(r: dict[str, Any]) -> None:
    n = r["chunks"]
    print()
    print(f"1. ingest: {r['docs']} documents, {n} chunks (raw-text + addToWorkspaces, embedded in the request)")
    print(f"   raw torch fp32 encode {r['torch_rate']:8.1f} chunks/s  (before/after "
          f"{' / '.join(f'{x:.1f}' for x in r['torch_rates'])}; CPU {1000 * r['torch_cpu'] / n:.0f} ms/chunk)")
    print(f"   raw fast (openvino)   {r['fast_rate']:8.1f} chunks/s  (before/after "
          f"{' / '.join(f'{x:.1f}' for x in r['fast_rates'])}; CPU {1000 * r['fast_cpu'] / n:.0f} ms/chunk); "
          f"fast / torch {r['fast_rate'] / r['torch_rate']:.2f}, CPU {r['torch_cpu'] / r['fast_cpu']:.2f}x less")
    for backend, a in r["apis"].items():
        ratio = a["api_rate"] / r["torch_rate"]
        aim = f" (aim >= {AIM_RATIO}: {'met' if ratio >= AIM_RATIO else 'NOT met'})" if backend == "openvino" else ""
        print(f"   API, {backend:<9} server {a['api_rate']:8.1f} chunks/s  ({a['api_s']:.1f} s, server CPU "
              f"{1000 * a['server_cpu'] / n:.0f} ms/chunk): / raw torch {ratio:.2f}{aim}, / raw fast "
              f"{a['api_rate'] / r['fast_rate']:.2f}")
    ok5 = r["fast_recall5"] >= 0.99 * r["torch_recall5"]
    okc = min(r["set_cosine_mean"], r["chunk_cosine_mean"]) >= 0.99
    print(f"   quality (labelled set, 300 chunks / 300 questions): recall@5 torch {r['torch_recall5']:.3f}, fast "
          f"{r['fast_recall5']:.3f} ({'met' if ok5 else 'NOT met'}: >= 0.99x); recall@1 {r['torch_recall1']:.3f} / "
          f"{r['fast_recall1']:.3f}")
    print(f"   cosine fast vs torch: labelled set mean {r['set_cosine_mean']:.5f}; ingest chunks mean "
          f"{r['chunk_cosine_mean']:.5f}, min {r['chunk_cosine_min']:.5f} ({'met' if okc else 'NOT met'}: >= 0.99)")


def report_search(s: dict[str, Any]) -> None:
    d, r = s["distinct"], s["repeated"]
    print()
    print(f"2. search over HTTP at {s['chunks']} chunks in one workspace (topN {TOP_N}, scoreThreshold 0, "
          f"random unit vectors in the cache)")
    print(f"   ingest with cached vectors: {s['chunks'] / s['fill_s']:.0f} chunks/s; saved index: {s['kind']}; "
          f"restart until ready {s['restart_s']:.1f} s; cache holds {s['cached']} vectors (= chunks + queries)")
    print(f"   {'':34}{'p50 ms':>8}{'p99 ms':>8}{'mean ms':>9}")
    for label, v in ((f"{len(d)} distinct queries (embedded)", d), (f"{len(r)} x one query (vector cached)", r)):
        print(f"   {label:<34}{pct(v, 50):8.1f}{pct(v, 99):8.1f}{statistics.mean(v):9.1f}")


def report_scale(s: dict[str, Any]) -> None:
    new = [e + a for e, a in zip(s["embed_ms"], s["approx_ms"])]
    print()
    print(f"3. index at {s['n']:,} vectors, one workspace (in-process; {len(new)} new queries embedded one at a time)")
    print(f"   approximate: IVF-Flat, {s['nlist']} clusters, {s['nprobe']} probed; exact add {s['exact_add_s']:.1f} s, "
          f"approximate add + background build {s['approx_build_s']:.1f} s; save {s['save_s']:.1f} s, "
          f"load {s['load_s']:.1f} s ({s['file_mib']:.0f} MiB)")
    m0, m1, m2 = s["memory_start"], s["memory_built"], s["memory_approx_only"]
    print(f"   memory (RSS): start {m0['VmRSS']:.0f} MiB, both indexes {m1['VmRSS']:.0f} MiB, approximate only "
          f"{m2['VmRSS']:.0f} MiB; peak {m2['VmHWM']:.0f} MiB")
    print(f"   {'':34}{'p50 ms':>8}{'p99 ms':>8}")
    for label, v in (("embed the query (openvino)", s["embed_ms"]), ("exact search", s["exact_ms"]),
                     ("approximate search", s["approx_ms"]), ("new query: embed + approximate", new)):
        print(f"   {label:<34}{pct(v, 50):8.2f}{pct(v, 99):8.2f}")
    ok = s["recall10"] >= 0.95
    print(f"   recall@10 of approximate vs exact: {s['recall10']:.3f} ({'met' if ok else 'NOT met'}: >= 0.95); "
          f"p50 new query {pct(new, 50):.1f} ms ({'met' if pct(new, 50) <= 10 else 'NOT met'}: <= 10 ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=int, default=2000, help="at least this many chunks to ingest (phase 1)")
    parser.add_argument("--search-chunks", type=int, default=100_000, help="chunks in the searched workspace")
    parser.add_argument("--queries", type=int, default=200, help="timed searches per kind")
    parser.add_argument("--seed", type=int, default=1, help="corpus, query and vector seed")
    parser.add_argument("--server-backends", default="openvino",
                        help="EMBED_BACKEND of each ingest server, comma-separated (openvino,torch)")
    parser.add_argument("--million", action="store_true", help="phase 3 at 1,000,000 vectors too (~10 min, ~6 GiB)")
    parser.add_argument("--skip-search", action="store_true", help="phase 1 and 3 only")
    args = parser.parse_args()
    args.server_backends = [b.strip() for b in args.server_backends.split(",") if b.strip()]
    if args.chunks < 1 or args.search_chunks < 1 or args.queries < 1:
        parser.error("--chunks, --search-chunks and --queries must be >= 1")
    if not set(args.server_backends) <= {"openvino", "torch"} or not args.server_backends:
        parser.error("--server-backends takes openvino and/or torch")
    ledgerllm = shutil.which("ledgerllm", path=str(Path(sys.executable).parent)) or shutil.which("ledgerllm")
    if not ledgerllm:
        sys.exit("ledgerllm console script not found; run with the project's venv python")

    # SIGTERM -> SystemExit, so the finally block below also runs when we are killed politely.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.perf_counter()
    load_before = loadavg()
    if load_before != "unknown" and float(load_before.split()[0]) > 0.5:
        print(f"warning: load average {load_before} before the run: other work on this machine skews the "
              f"numbers", file=sys.stderr, flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="ledgerllm-bench-"))
    servers: list[Server] = []
    try:
        ingest = phase_ingest(args, ledgerllm, tmp, servers)
        search = None if args.skip_search else phase_search(args, ledgerllm, tmp, servers)
        scale = phase_scale(args, tmp)
        report(args, ingest, search, scale, time.perf_counter() - started, load_before)
    except BenchError as err:
        sys.exit(f"benchmark failed: {err}")
    except KeyboardInterrupt:
        sys.exit("interrupted")
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

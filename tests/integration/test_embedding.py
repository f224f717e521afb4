"""The embedding adapters with the real bundled model, real tiktoken and real faiss (no mocks):
infrastructure.embedder.LocalEmbedder, infrastructure.tokenizer.Tokenizer,
infrastructure.faiss_index.VectorIndex / WorkspaceIndexes."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from infrastructure.embedder import LocalEmbedder
from infrastructure.faiss_index import VectorIndex
from infrastructure.faiss_store import WorkspaceIndexes
from infrastructure.tokenizer import Tokenizer

ROOT = Path(__file__).resolve().parents[2]
MARKER = "\n…[truncated]…\n"


@pytest.fixture(scope="module")
def offline_probe(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    """A fresh process with no offline flags set, an empty HF cache and every network route
    pointing at a closed port, that loads the model and the tokenizer. Started before the
    in-process model loads, so the two loads overlap (the file stays quick)."""
    hf_home = tmp_path_factory.mktemp("hf")
    env = {k: v for k, v in os.environ.items()
           if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "TIKTOKEN_CACHE_DIR", "LITELLM_LOCAL_MODEL_COST_MAP")}
    dead = "http://127.0.0.1:9"
    env.update(HF_HOME=str(hf_home), HF_ENDPOINT=dead, HTTP_PROXY=dead, HTTPS_PROXY=dead,
               http_proxy=dead, https_proxy=dead, NO_PROXY="", no_proxy="")
    code = (
        "from infrastructure.embedder import LocalEmbedder\n"
        "from infrastructure.tokenizer import Tokenizer\n"
        "v = LocalEmbedder().embed(['offline'])\n"
        "print(v.shape[1], Tokenizer().count('hello world'))\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        yield proc, hf_home
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


@pytest.fixture(scope="module")
def embedder(offline_probe: tuple[subprocess.Popen[str], Path]) -> LocalEmbedder:
    return LocalEmbedder().warm()


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    return Tokenizer()


def _prose(n_chars: int, seed: int = 7) -> str:
    """Deterministic prose: sentences of 6-18 words, paragraphs of 2-6 sentences, some multibyte."""
    rng = random.Random(seed)
    words = ("the ledger records every event and the projection replays them into tables while "
             "users ask questions about documents which are embedded into vectors stored per "
             "workspace café naïve façade Größe 日本語 данные 🙂").split()
    out: list[str] = []
    size = 0
    while size < n_chars:
        para = []
        for _ in range(rng.randint(2, 6)):
            sentence = " ".join(rng.choice(words) for _ in range(rng.randint(6, 18)))
            para.append(sentence[0].upper() + sentence[1:] + rng.choice(".!?"))
        text = " ".join(para)
        out.append(text)
        size += len(text) + 2
    return "\n\n".join(out)


def _random_unit(n: int, seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, 384), dtype=np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


# --- imports stay light ---


def test_importing_adapters_loads_no_heavy_library() -> None:
    code = (
        "import sys, infrastructure.tokenizer, infrastructure.embedder, infrastructure.faiss_index\n"
        "print(','.join(m for m in ('torch', 'sentence_transformers', 'faiss', 'tiktoken', 'litellm') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


# --- embedder ---


def test_model_loads_offline_from_the_bundled_package(
    offline_probe: tuple[subprocess.Popen[str], Path], embedder: LocalEmbedder
) -> None:
    proc, hf_home = offline_probe
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-3000:]
    assert out.split() == ["384", "2"]
    assert not any(hf_home.rglob("*.safetensors"))  # nothing was downloaded into the cache


def test_embedder_attributes(embedder: LocalEmbedder) -> None:
    assert embedder.model_name == "all-MiniLM-L6-v2+openvino-bf16"
    assert embedder.dimensions == 384
    assert embedder.max_tokens == 256
    assert embedder.loaded


def test_similar_meanings_are_closer(embedder: LocalEmbedder) -> None:
    cat, kitten, revenue = embedder.embed(["a cat sat on the mat", "a kitten on a rug", "quarterly revenue grew"])
    assert float(cat @ kitten) > float(cat @ revenue) + 0.3
    a, b, c = embedder.embed(["How do I reset my password?", "I forgot my login credentials",
                              "The recipe needs two eggs"])
    assert float(a @ b) > float(a @ c)


def test_vectors_are_normalized_float32(embedder: LocalEmbedder) -> None:
    texts = ["short", "a somewhat longer sentence about ledgers", "日本語のテキスト 🙂", "", "x " * 2000]
    v = embedder.embed(texts, batch_size=2)
    assert v.dtype == np.float32 and v.shape == (5, 384) and v.flags.c_contiguous
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    empty = embedder.embed([])
    assert empty.shape == (0, 384) and empty.dtype == np.float32
    assert embedder.embed_one("short").shape == (384,)


def test_embed_rejects_bad_input(embedder: LocalEmbedder) -> None:
    with pytest.raises(TypeError):
        embedder.embed("a single string")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        embedder.embed(["ok", 3])  # type: ignore[list-item]
    with pytest.raises(ValueError):
        embedder.embed(["ok"], batch_size=0)


def test_four_threads_give_the_same_vectors_as_serial(embedder: LocalEmbedder) -> None:
    rng = random.Random(4)
    words = "ledger event user workspace vector chunk model query answer thread key audit".split()
    groups = [[f"{g}.{i} " + " ".join(rng.choice(words) for _ in range(rng.randint(3, 25))) for i in range(8)]
              for g in range(8)]
    serial = [embedder.embed(g, batch_size=16) for g in groups]
    with ThreadPoolExecutor(max_workers=4) as pool:
        parallel = list(pool.map(lambda g: embedder.embed(g, batch_size=16), groups))
    for s, p in zip(serial, parallel, strict=True):
        np.testing.assert_allclose(s, p, atol=1e-6)


# --- tokenizer ---


def test_count(tok: Tokenizer) -> None:
    assert tok.count("") == 0
    assert tok.count("hello world") == 2
    assert tok.count("<|endoftext|>") > 1  # special-token text in documents is plain text


def test_chunk_sizes_overlap_and_determinism(tok: Tokenizer) -> None:
    text = _prose(40_000)
    size, overlap = 120, 30
    chunks = tok.chunk(text, size, overlap)
    assert len(chunks) > 10
    assert all(c and c == c.strip() for c in chunks)
    assert all(tok.count(c) <= size for c in chunks)
    # Most chunks are nearly full: a cut only moves back into the last ~20% of the window.
    assert sum(tok.count(c) >= 0.75 * size for c in chunks[:-1]) >= 0.9 * (len(chunks) - 1)
    # Overlap: each chunk begins with text the previous one ended with.
    for prev, nxt in zip(chunks, chunks[1:]):
        head = " ".join(nxt.split()[:5])
        assert head in " ".join(prev.split()), (prev[-200:], nxt[:200])
    assert tok.chunk(text, size, overlap) == chunks


def test_chunks_prefer_sentence_ends_and_never_cut_words(tok: Tokenizer) -> None:
    text = _prose(30_000, seed=3)
    vocabulary = set(text.replace(".", " ").replace("!", " ").replace("?", " ").lower().split())
    chunks = tok.chunk(text, 100, 0)
    # A sentence end lies in the last 20 tokens of nearly every window (sentences are 6-18 words).
    ends = sum(c[-1] in ".!?" for c in chunks[:-1])
    assert ends >= 0.9 * (len(chunks) - 1)
    for c in chunks:
        words = c.replace(".", " ").replace("!", " ").replace("?", " ").lower().split()
        assert set(words) <= vocabulary
    # Without overlap, the chunks hold exactly the text's words, in order.
    assert " ".join(chunks).split() == text.split()


def test_paragraph_breaks_win_over_sentence_ends(tok: Tokenizer) -> None:
    para = "This sentence is short. " * 3
    text = "\n\n".join([para.strip()] * 40)
    for c in tok.chunk(text, 60, 10)[:-1]:
        assert c.endswith("short.")
    chunks = tok.chunk(text, 60, 0)
    # Each cut lands on a blank line, so chunks are whole paragraphs.
    assert all(c.count("This sentence is short.") % 3 == 0 for c in chunks)


def test_multibyte_text_survives_chunking(tok: Tokenizer) -> None:
    text = " ".join(["héllo wörld 日本語 🙂"] * 200) + " 👍🏽 Größe Ωмега עברית العربية हिन्दी"
    nospace = "".join(text.split())
    for size, overlap in [(1, 0), (2, 1), (3, 0), (5, 2), (8, 3), (16, 4), (64, 16)]:
        chunks = tok.chunk(text, size, overlap)
        assert chunks, (size, overlap)
        assert all("\ufffd" not in c for c in chunks), (size, overlap)
        assert all(c.strip() for c in chunks)
        if size >= 4:  # below that, one character can need more tokens than the window holds
            assert all(tok.count(c) <= size for c in chunks), (size, overlap)
        if overlap == 0:
            assert "".join("".join(chunks).split()) == nospace, (size, overlap)


def test_chunk_edge_cases(tok: Tokenizer) -> None:
    assert tok.chunk("", 10, 0) == []
    assert tok.chunk(" \n\t \n\n  ", 10, 2) == []
    assert tok.chunk("  one short text \n", 10, 2) == ["one short text"]
    spaced = ("word " + " " * 300 + "\n\n" * 50) * 5
    assert all(c == "word" or set(c.split()) == {"word"} for c in tok.chunk(spaced, 8, 2))
    nospaces = "x" * 5000  # no boundary anywhere: hard cuts, still within size
    chunks = tok.chunk(nospaces, 50, 10)
    assert all(0 < tok.count(c) <= 50 for c in chunks) and "".join(chunks).count("x") > 5000
    for size, overlap in [(0, 0), (-1, 0), (10, 10), (10, 11), (10, -1)]:
        with pytest.raises(ValueError):
            tok.chunk("some text", size, overlap)
    with pytest.raises(TypeError):
        tok.chunk("some text", 10.0, 0)  # type: ignore[arg-type]


def test_one_megabyte_chunks_fast(tok: Tokenizer) -> None:
    text = _prose(1_000_000, seed=11)
    assert len(text.encode()) >= 1_000_000
    tok.chunk(text[:10_000], 200, 40)  # first call builds the token-length table
    t = time.perf_counter()
    chunks = tok.chunk(text, 200, 40)
    elapsed = time.perf_counter() - t
    assert len(chunks) > 1000
    assert elapsed < 1.5, f"chunking 1 MB took {elapsed:.2f} s"


def test_truncate_middle(tok: Tokenizer) -> None:
    text = "HEAD-START " + _prose(20_000, seed=5) + " TAIL-END"
    assert tok.truncate_middle("short text", 100) == "short text"
    for limit in (30, 100, 500, 2000):
        out = tok.truncate_middle(text, limit)
        assert tok.count(out) <= limit
        assert out.startswith("HEAD-START") and out.endswith("TAIL-END") and MARKER in out
        head, tail = out.split(MARKER)
        assert text.startswith(head) and text.endswith(tail)
        assert tok.count(out) >= limit - 10  # the budget is used, not wasted
    custom = tok.truncate_middle(text, 50, marker=" [...] ")
    assert " [...] " in custom and tok.count(custom) <= 50
    for limit in (0, 1, 3, 6):  # no room for the marker: never raises, still fits
        out = tok.truncate_middle(text, limit)
        assert tok.count(out) <= limit and "\ufffd" not in out
    emoji = "🙂" * 500
    out = tok.truncate_middle(emoji, 41)
    assert tok.count(out) <= 41 and "\ufffd" not in out and out.startswith("🙂") and out.endswith("🙂")
    with pytest.raises(ValueError):
        tok.truncate_middle(text, -1)


# --- faiss ---


def test_vector_index_add_search_remove() -> None:
    index = VectorIndex()
    assert len(index) == 0 and index.search(_random_unit(1, 0)[0], 5) == []
    vecs = _random_unit(50, 1)
    ids = np.arange(1000, 1050, dtype=np.int64)
    index.add(ids, vecs)
    assert len(index) == 50
    hits = index.search(vecs[7], 3)
    assert hits[0][0] == 1007 and hits[0][1] == pytest.approx(1.0, abs=1e-5)
    assert all(-1.0 <= s <= 1.0 for _, s in hits) and [s for _, s in hits] == sorted((s for _, s in hits), reverse=True)
    assert len(index.search(vecs[0], 500)) == 50  # k clamped to the index size
    assert index.search(vecs[0], 0) == []
    # Upsert: re-adding an id replaces its vector.
    index.add([1007], vecs[8:9])
    assert len(index) == 50
    assert {i for i, _ in index.search(vecs[8], 2)} == {1007, 1008}
    assert index.remove([1007, 1008, 99999]) == 2 and len(index) == 48
    assert 1007 not in index and 1009 in index
    assert all(i not in (1007, 1008) for i, _ in index.search(vecs[8], 48))
    assert index.remove([1007]) == 0
    # Unnormalized input is normalized: cosine stays within [-1, 1].
    fresh = _random_unit(1, 99)
    index.add([5], fresh * 10)
    assert index.search(fresh[0] * 3, 1)[0] == (5, pytest.approx(1.0, abs=1e-5))
    with pytest.raises(ValueError):
        index.add([1, 2], vecs[:1])
    with pytest.raises(ValueError):
        index.add([1, 1], vecs[:2])
    with pytest.raises(ValueError):
        index.add([1], np.zeros((1, 10), dtype=np.float32))


def test_search_agrees_with_brute_force() -> None:
    vecs = _random_unit(2000, 2)
    ids = np.arange(2000, dtype=np.int64) * 7 + 3
    index = VectorIndex()
    index.add(ids, vecs)
    for q in _random_unit(25, 3):
        sims = vecs @ q
        order = np.argsort(-sims)[:10]
        hits = index.search(q, 10)
        assert [i for i, _ in hits] == ids[order].tolist()
        np.testing.assert_allclose([s for _, s in hits], sims[order], atol=1e-5)


def test_save_load_round_trip(tmp_path: Path) -> None:
    vecs = _random_unit(300, 4)
    index = VectorIndex()
    index.add(np.arange(300, dtype=np.int64), vecs)
    index.remove(np.arange(0, 300, 3))
    path = tmp_path / "idx" / "ws-1.faiss"
    index.save(path, 4242)
    meta = json.loads(path.with_name("ws-1.faiss.json").read_text())
    assert meta["position"] == 4242 and meta["count"] == 200
    loaded = VectorIndex.load(path)
    assert loaded is not None
    copy, position = loaded
    assert position == 4242 and len(copy) == 200
    assert sorted(copy.ids().tolist()) == sorted(index.ids().tolist())
    for q in vecs[:10]:
        assert copy.search(q, 5) == index.search(q, 5)
    copy.add([0], vecs[1:2])  # the loaded index keeps working, upserts included
    assert len(copy) == 201 and copy.search(vecs[1], 2)[0][1] == pytest.approx(1.0, abs=1e-5)
    assert not list(path.parent.glob("*.tmp"))


def test_load_missing_or_corrupt_gives_none(tmp_path: Path) -> None:
    assert VectorIndex.load(tmp_path / "nothing.faiss") is None
    a, b = VectorIndex(), VectorIndex()
    a.add([1, 2], _random_unit(2, 5))
    b.add([3], _random_unit(1, 6))
    path = tmp_path / "a.faiss"
    a.save(path, 1)
    good = path.read_bytes()
    path.write_bytes(good[:-10])  # truncated
    assert VectorIndex.load(path) is None
    path.write_bytes(b"garbage")
    assert VectorIndex.load(path) is None
    # An index from another save next to this sidecar (a crash between the two renames).
    b.save(tmp_path / "b.faiss", 2)
    path.write_bytes((tmp_path / "b.faiss").read_bytes())
    assert VectorIndex.load(path) is None
    path.write_bytes(good)
    assert VectorIndex.load(path) is not None
    path.with_name("a.faiss.json").write_text("{not json")
    assert VectorIndex.load(path) is None
    path.with_name("a.faiss.json").unlink()
    assert VectorIndex.load(path) is None


def test_concurrent_search_while_changing() -> None:
    index = VectorIndex()
    base = _random_unit(5000, 7)
    index.add(np.arange(5000, dtype=np.int64), base)
    extra = _random_unit(2000, 8)
    errors: list[BaseException] = []
    stop = threading.Event()

    def searcher(seed: int) -> None:
        qs = _random_unit(50, seed)
        try:
            while not stop.is_set():
                for q in qs:
                    hits = index.search(q, 5)
                    assert len(hits) == 5 and all(i >= 0 for i, _ in hits)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=searcher, args=(s,)) for s in (10, 11, 12)]
    for t in threads:
        t.start()
    for i in range(0, 2000, 100):
        index.add(np.arange(10_000 + i, 10_100 + i, dtype=np.int64), extra[i : i + 100])
        index.remove(np.arange(i, i + 50, dtype=np.int64))
    stop.set()
    for t in threads:
        t.join()
    assert not errors
    assert len(index) == 5000 + 2000 - 1000


def test_workspace_indexes_save_and_load_all(tmp_path: Path) -> None:
    reg = WorkspaceIndexes()
    vecs = _random_unit(30, 9)
    reg.get(1).add(np.arange(10, dtype=np.int64), vecs[:10])
    reg.get(2).add(np.arange(10, 30, dtype=np.int64), vecs[10:])
    reg.get("my-workspace").add([77], vecs[:1])
    assert reg.get(1) is reg.get(1) and len(reg) == 3
    reg.save_all(tmp_path, 100)

    other = WorkspaceIndexes()
    assert other.load_all(tmp_path) == 100
    assert sorted(map(str, other.workspace_ids())) == ["1", "2", "my-workspace"]
    assert len(other.get(1)) == 10 and len(other.get(2)) == 20 and len(other.get("my-workspace")) == 1
    assert other.get(2).search(vecs[15], 1)[0][0] == 15

    # Drop one workspace, change another: the dropped one's files go, the position moves on.
    reg.drop(2)
    reg.get(1).remove([0])
    reg.save_all(tmp_path, 150)
    assert not (tmp_path / "ws-2.faiss").exists() and not (tmp_path / "ws-2.faiss.json").exists()
    third = WorkspaceIndexes()
    assert third.load_all(tmp_path) == 150
    assert 2 not in third and len(third.get(1)) == 9

    # A corrupt index named by the manifest: nothing is loaded, the caller rebuilds.
    (tmp_path / "ws-1.faiss").write_bytes(b"broken")
    fourth = WorkspaceIndexes()
    fourth.get(5)
    assert fourth.load_all(tmp_path) is None and len(fourth) == 0
    assert WorkspaceIndexes().load_all(tmp_path / "empty") is None
    with pytest.raises(ValueError):
        reg.get("../escape")

"""Two `ledgerllm serve` processes as two machines: separate DATA_DIRs, one PostgreSQL, one
Redis. A document uploaded on one is embedded and found through the other (its bytes and text
are in PostgreSQL, not on the first machine's disk); both restart cleanly, even from an empty
DATA_DIR, since what a machine keeps there are caches it rebuilds."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import psycopg

from tests.support.app import Backend
from tests.support.process import ServerProcess, get, send

LLM = {"LLM_MODEL": "openai/test-model", "LLM_CONTEXT_WINDOW": "4096", "LLM_TIMEOUT": "10",
       "LLM_API_KEY": "sk-test-provider-key-9f8e7d"}
AXOLOTL = ("The axolotl of lake Xochimilco regrows a lost limb within weeks. "
           "Its gills are feathery and pink, and it stays a larva all its life.")


def answer(response: tuple[int, bytes]) -> dict:
    status, body = response
    assert status == 200, body
    return json.loads(body)


def serve(backend: Backend, log: Path, llm) -> ServerProcess:
    server = ServerProcess(backend, log, env={**LLM, "LLM_API_BASE": llm.base_url})
    server.wait_ready()
    return server


def search(server: ServerProcess, key: str, query: str) -> list[dict]:
    return answer(send("POST", f"{server.url}/api/v1/workspace/far/vector-search", key,
                       json.dumps({"query": query, "topN": 3}).encode()))["results"]


def blob_files(backend: Backend) -> list[Path]:
    return [p for p in (backend.data_dir / "blobs").rglob("*") if p.is_file()]


def test_a_document_uploaded_on_one_machine_is_embedded_and_found_through_the_other(tmp_path, pg_url, redis_url, llm):
    a = Backend("postgres", tmp_path / "machine-a", pg_url, redis_url)
    b = Backend("postgres", tmp_path / "machine-b", pg_url, redis_url)
    key = a.cli("api-keys", "create", "--name", "two-machines").stdout.strip().splitlines()[-1]
    first, second = serve(a, tmp_path / "a.log", llm), serve(b, tmp_path / "b.log", llm)
    try:
        uploaded = answer(send("POST", f"{first.url}/api/v1/document/raw-text", key, json.dumps(
            {"textContent": AXOLOTL, "metadata": {"title": "Axolotl"}}).encode()))
        location = uploaded["documents"][0]["location"]
        answer(send("POST", f"{second.url}/api/v1/workspace/new", key, json.dumps({"name": "Far"}).encode()))

        embedded = answer(send("POST", f"{second.url}/api/v1/workspace/far/update-embeddings", key,
                               json.dumps({"adds": [location]}).encode()))
        assert embedded["failedToEmbed"] == [] and embedded["errors"] == [], embedded
        assert [d["docpath"] for d in embedded["workspace"]["documents"]] == [location]

        hits = search(second, key, "how does the axolotl regrow a limb")
        assert hits and "axolotl" in hits[0]["text"].lower(), hits
        llm.reply("It regrows it.")
        chat = answer(send("POST", f"{second.url}/api/v1/workspace/far/chat", key,
                           json.dumps({"message": "What does the axolotl regrow?", "mode": "query"}).encode()))
        assert chat["textResponse"] == "It regrows it." and chat["sources"][0]["title"] == "Axolotl", chat
        assert "Xochimilco" in json.dumps(llm.chat_requests[-1].body)  # the text reached the model through B
        # neither machine holds the bytes: they are in PostgreSQL, once
        assert blob_files(a) == [] and blob_files(b) == []
        with psycopg.connect(pg_url) as conn:
            assert conn.execute("SELECT count(*) FROM ledger_blobs").fetchone()[0] == 1  # raw text: original and text are one blob
    finally:
        stopped = [first.stop(), second.stop()]
    assert set(stopped) <= {0, -15}, stopped  # as test_server_process: uvicorn may end by the signal

    # Both restart cleanly; B even from an empty DATA_DIR (faiss files and the embedding cache
    # are rebuilt from the shared read model), and applies every event again without BlobNotFound.
    shutil.rmtree(b.data_dir)
    first, second = serve(a, tmp_path / "a2.log", llm), serve(b, tmp_path / "b2.log", llm)
    try:
        for server in (first, second):
            assert "axolotl" in search(server, key, "axolotl limbs")[0]["text"].lower()
            server.wait_warm()  # litellm may still be loading (its warm-up takes seconds)
            assert get(f"{server.url}/api/health/ready")[0] == 200
        again = answer(send("POST", f"{first.url}/api/v1/workspace/far/update-embeddings", key,
                            json.dumps({"deletes": [location]}).encode()))
        assert again["workspace"]["documents"] == []
        readded = answer(send("POST", f"{second.url}/api/v1/workspace/far/update-embeddings", key,
                              json.dumps({"adds": [location]}).encode()))
        assert readded["failedToEmbed"] == [], readded
    finally:
        stopped = [first.stop(), second.stop()]
    assert set(stopped) <= {0, -15}, stopped
    for log in ("a.log", "b.log", "a2.log", "b2.log"):
        text = (tmp_path / log).read_text()
        assert "BlobNotFound" not in text and "Traceback" not in text, text
        assert "ledgerllm stopped: store and views closed" in text, text

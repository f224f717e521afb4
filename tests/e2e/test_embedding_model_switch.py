"""The vectors record their embedding model, and one index never mixes two: a server keeps the
model the stored vectors come from whatever EMBED_BACKEND says, `ledgerllm projections
rebuild vectors` re-embeds with EMBED_BACKEND's model, and a server still running the old
model then refuses searches (503, saying to restart) until it is restarted. On both backends."""

from __future__ import annotations

from contextlib import contextmanager

from infrastructure.eventstore import open_view
from projections.vectors import VectorsProjection, recorded_model
from tests.support.app import bearer, client_for, owner_key

TORCH, FAST = "all-MiniLM-L6-v2", "all-MiniLM-L6-v2+openvino-bf16"
TEXT = "The lighthouse keeper of Varn Kessel logged every passing ship in a green ledger."


@contextmanager
def _vectors_view(backend):
    view = open_view(backend.settings(), "vectors", VectorsProjection.views())
    try:
        yield view
    finally:
        view.datastore.close()


def _cached_models(backend) -> dict[str, int]:
    with _vectors_view(backend) as view, view.read() as tx:
        rows = tx.all("SELECT model, COUNT(*) AS n FROM embedding_cache GROUP BY model")
    return {r["model"]: r["n"] for r in rows}


def _model_of(backend) -> str | None:
    with _vectors_view(backend) as view:
        return recorded_model(view)


def _search(client, key, query="who logged the ships?"):
    return client.post("/api/v1/workspace/notes/vector-search", headers=bearer(key), json={"query": query})


def _served_model(client, key) -> str:
    response = client.post("/api/v1/openai/embeddings", headers=bearer(key), json={"input": "x"})
    assert response.status_code == 200, response.text
    return response.json()["model"]


def test_changing_the_embedding_model_is_a_rebuild(backend):
    with client_for(backend, embed_backend="torch") as client:
        key = owner_key(client)
        assert client.post("/api/v1/workspace/new", headers=bearer(key), json={"name": "notes"}).status_code == 200
        response = client.post("/api/v1/document/raw-text", headers=bearer(key), json={
            "textContent": TEXT, "metadata": {"title": "ledger"}, "addToWorkspaces": "notes"})
        assert response.status_code == 200 and not response.json().get("failedToEmbed"), response.text
        assert _search(client, key).json()["results"][0]["text"] == TEXT
    assert _model_of(backend) == TORCH

    with client_for(backend) as client:  # EMBED_BACKEND=openvino now, but the vectors are torch's
        assert _served_model(client, key) == TORCH
        assert _search(client, key).json()["results"][0]["text"] == TEXT
        rebuilt = backend.cli("projections", "rebuild", "vectors")  # re-embeds with openvino
        assert "vectors: rebuilt from" in rebuilt.stdout, rebuilt.stdout + rebuilt.stderr
        assert _model_of(backend) == FAST
        refused = _search(client, key)  # this server still embeds with torch: no mixing
        assert refused.status_code == 503, refused.text
        assert "restart" in refused.json()["error"].lower() and FAST in refused.json()["error"]
    cached = _cached_models(backend)
    assert cached[TORCH] >= 1 and cached[FAST] >= 1, cached  # both kept: switching back costs nothing

    with client_for(backend) as client:
        assert _served_model(client, key) == FAST
        hits = _search(client, key).json()["results"]
        assert hits[0]["text"] == TEXT and hits[0]["score"] > 0.3, hits
    verified = backend.cli("verify", "vectors")
    assert verified.returncode == 0

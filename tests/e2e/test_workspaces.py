"""Workspaces, membership, embedding and vector search over /api/v1, with real embeddings
from the bundled model and real faiss, on both backends."""

from __future__ import annotations

import shutil

from tests.support.app import bearer, client_for, multi_user_keys, owner_key

UPSTREAM_WORKSPACE_FIELDS = {
    "id", "name", "slug", "vectorTag", "createdAt", "openAiTemp", "openAiHistory", "lastUpdatedAt", "openAiPrompt",
    "similarityThreshold", "chatProvider", "chatModel", "topN", "chatMode", "pfpFilename", "agentProvider",
    "agentModel", "queryRefusalResponse", "vectorSearchMode", "router_id",
}
FACTS = {
    "cats": "Cats are small carnivorous mammals. A cat likes to sleep on a warm rug by the fire.",
    "finance": "Quarterly revenue grew by twelve percent, driven by subscription sales in Europe.",
    "space": "The rocket reached orbit after a nine minute burn and deployed two satellites.",
}


def _raw(client, key, title, text, workspaces=""):
    response = client.post("/api/v1/document/raw-text", headers=bearer(key), json={
        "textContent": text, "metadata": {"title": title}, "addToWorkspaces": workspaces})
    assert response.status_code == 200, response.text
    return response.json()["documents"][0]


def _search(client, key, slug, query, **extra):
    response = client.post(f"/api/v1/workspace/{slug}/vector-search", headers=bearer(key), json={"query": query, **extra})
    assert response.status_code == 200, response.text
    return response.json()["results"]


def test_create_with_upstream_defaults_clamps_and_slugs(client):
    key = owner_key(client)
    response = client.post("/api/v1/workspace/new", headers=bearer(key), json={
        "name": "Research Notes", "similarityThreshold": 7, "openAiHistory": -3, "chatMode": "nonsense", "topN": 0,
        "unknownKey": 1})
    assert response.status_code == 200
    body = response.json()
    assert body["message"] is None
    ws = body["workspace"]
    assert UPSTREAM_WORKSPACE_FIELDS <= set(ws)
    assert (ws["slug"], ws["similarityThreshold"], ws["openAiHistory"], ws["chatMode"], ws["topN"]) == (
        "research-notes", 1.0, 0, "automatic", 1)
    assert ws["openAiPrompt"].startswith("Given the following conversation")
    again = client.post("/api/v1/workspace/new", headers=bearer(key), json={"name": "Research Notes"}).json()
    assert again["workspace"]["slug"].startswith("research-notes-") and len(again["workspace"]["slug"]) == 23
    missing = client.post("/api/v1/workspace/new", headers=bearer(key), json={})
    assert missing.status_code == 400 and missing.json() == {"workspace": None, "message": "name cannot be null"}
    wrong = client.post("/api/v1/workspace/new", headers=bearer(key), json={"name": "x", "topN": "many"})
    assert wrong.status_code == 400 and wrong.json()["workspace"] is None and "topN" in wrong.json()["message"]


def test_list_get_update_and_delete(client, backend):
    key = owner_key(client)
    client.post("/api/v1/workspace/new", headers=bearer(key), json={"name": "Alpha"})
    listed = client.get("/api/v1/workspaces", headers=bearer(key)).json()["workspaces"]
    assert [w["slug"] for w in listed] == ["alpha"] and listed[0]["threads"] == []
    got = client.get("/api/v1/workspace/alpha", headers=bearer(key)).json()["workspace"]
    assert isinstance(got, list) and got[0]["documents"] == [] and got[0]["threads"] == []
    unknown = client.get("/api/v1/workspace/nope", headers=bearer(key))  # upstream: 200 and no workspace
    assert unknown.status_code == 200 and unknown.json() == {"workspace": []}
    updated = client.post("/api/v1/workspace/alpha/update", headers=bearer(key),
                          json={"openAiTemp": 0.5, "name": "Alpha Two"}).json()
    assert updated["workspace"]["openAiTemp"] == 0.5 and updated["workspace"]["name"] == "Alpha Two"
    assert updated["workspace"]["slug"] == "alpha"  # the slug stays, as upstream
    same = client.post("/api/v1/workspace/alpha/update", headers=bearer(key), json={"openAiTemp": 0.5}).json()
    assert same["message"] == "No valid fields to update!"
    assert client.post("/api/v1/workspace/nope/update", headers=bearer(key), json={"topN": 2}).status_code == 404
    deleted = client.delete("/api/v1/workspace/alpha", headers=bearer(key))
    # upstream answers with Express's sendStatus(200): "OK" as text/plain
    assert deleted.status_code == 200 and deleted.content == b"OK" and deleted.headers["content-type"].startswith("text/plain")
    assert client.delete("/api/v1/workspace/alpha", headers=bearer(key)).status_code == 404
    assert client.get("/api/v1/workspaces", headers=bearer(key)).json()["workspaces"] == []
    topics = [e["topic"].rsplit(":", 1)[1] for e in backend.raw_events()]
    assert {"Workspace.Created", "Workspace.Updated", "Workspace.Deleted", "WorkspaceDirectory.Unlisted"} <= set(topics)
    # the slug is free again
    assert client.post("/api/v1/workspace/new", headers=bearer(key), json={"name": "Alpha"}).json()["workspace"]["slug"] == "alpha"


def test_upload_embed_search_finds_the_right_chunk_and_unembed_forgets_it(client, backend):
    key = owner_key(client)
    client.post("/api/v1/workspace/new", headers=bearer(key), json={"name": "Facts"})
    docs = {name: _raw(client, key, name, text) for name, text in FACTS.items()}
    embedded = client.post("/api/v1/workspace/facts/update-embeddings", headers=bearer(key), json={
        "adds": [d["location"] for d in docs.values()] + ["custom-documents/missing.json"]}).json()
    # every added docpath is there; the failure is reported, not swallowed
    assert {d["docpath"] for d in embedded["workspace"]["documents"]} == {d["location"] for d in docs.values()}
    assert embedded["failedToEmbed"] == ["custom-documents/missing.json"]
    assert embedded["errors"][0]["error"] == "Document not found"
    results = _search(client, key, "facts", "Which animal naps on a rug?", topN=1, scoreThreshold=0)
    assert len(results) == 1 and "rug" in results[0]["text"]
    hit = results[0]
    assert set(hit) == {"id", "text", "metadata", "distance", "score"}
    assert abs(hit["distance"] - (1 - hit["score"])) < 1e-6 and hit["metadata"]["title"] == "cats"
    assert {"url", "title", "author", "description", "docSource", "chunkSource", "published", "wordCount",
            "tokenCount"} <= set(hit["metadata"])
    three = _search(client, key, "facts", "cats, revenue and rockets", topN=3, scoreThreshold=0)
    assert len(three) == 3 and [r["score"] for r in three] == sorted((r["score"] for r in three), reverse=True)
    assert _search(client, key, "facts", "Which animal naps on a rug?", scoreThreshold=0.99) == []
    assert client.get("/api/v1/system/vector-count", headers=bearer(key)).json() == {"vectorCount": 3}
    client.post("/api/v1/workspace/facts/update-embeddings", headers=bearer(key),
                json={"deletes": [docs["cats"]["location"]]})
    titles = {r["metadata"]["title"] for r in _search(client, key, "facts", "cats, revenue and rockets", topN=5,
                                                        scoreThreshold=0)}
    assert titles == {"finance", "space"}


def test_vector_search_errors_and_empty_workspace(client):
    key = owner_key(client)
    client.post("/api/v1/workspace/new", headers=bearer(key), json={"name": "Empty"})
    empty = client.post("/api/v1/workspace/empty/vector-search", headers=bearer(key), json={"query": "x"}).json()
    assert empty == {"results": [], "message": "No embeddings found for this workspace."}
    blank = client.post("/api/v1/workspace/empty/vector-search", headers=bearer(key), json={"query": "  "})
    assert blank.status_code == 400 and blank.json()["message"] == "Query parameter cannot be empty."
    unknown = client.post("/api/v1/workspace/nope/vector-search", headers=bearer(key), json={"query": "x"})
    assert unknown.status_code == 404 and "not a valid workspace" in unknown.json()["message"]
    typed = client.post("/api/v1/workspace/empty/vector-search", headers=bearer(key), json={"query": "x", "topN": "many"})
    assert typed.status_code == 400


def test_rebuilding_the_vector_index_from_events_gives_the_same_results(backend):
    queries = ["sleepy pets", "company earnings", "satellite launch"]
    with client_for(backend) as client:
        key = owner_key(client)
        client.post("/api/v1/workspace/new", headers=bearer(key), json={"name": "Facts"})
        for name, text in FACTS.items():
            _raw(client, key, name, text, "facts")
        before = [_search(client, key, "facts", q, topN=3, scoreThreshold=0) for q in queries]
        runner = client.app.state.runtime.runner("vectors")
        # rebuild the vectors read model from zero while the app runs: the faiss copy starts over
        runner.reset()
        runner.catch_up()
        assert [_search(client, key, "facts", q, topN=3, scoreThreshold=0) for q in queries] == before
    # and with the faiss files gone, a restart rebuilds them from the read model
    shutil.rmtree(backend.data_dir / "faiss", ignore_errors=True)
    with client_for(backend) as client:
        assert [_search(client, key, "facts", q, topN=3, scoreThreshold=0) for q in queries] == before
    # a restart that finds its saved copy loads it and gives the same answers
    assert (backend.data_dir / "faiss").exists()
    with client_for(backend) as client:
        assert [_search(client, key, "facts", q, topN=3, scoreThreshold=0) for q in queries] == before


def test_reembedding_the_same_text_never_recomputes(client):
    key = owner_key(client)
    client.post("/api/v1/workspace/new", headers=bearer(key), json={"name": "One"})
    client.post("/api/v1/workspace/new", headers=bearer(key), json={"name": "Two"})
    ctx = client.app.state.runtime.ctx
    doc = _raw(client, key, "cats", FACTS["cats"], "one")
    calls = []
    original = ctx.content.embedder.embed

    def counting(texts, *a, **k):
        calls.append(len(texts))
        return original(texts, *a, **k)

    ctx.content.embedder.embed = counting  # count calls into the real model; nothing is faked
    try:
        client.post("/api/v1/workspace/two/update-embeddings", headers=bearer(key), json={"adds": [doc["location"]]})
        _raw(client, key, "cats again", FACTS["cats"], "two")
    finally:
        del ctx.content.embedder.embed
    assert calls == []


def test_pin_and_membership_rules(client):
    keys = multi_user_keys(client)
    admin, manager, default = (bearer(keys[r]) for r in ("admin", "manager", "default"))
    assert client.post("/api/v1/workspace/new", headers=manager, json={"name": "Team"}).status_code == 200
    assert client.post("/api/v1/workspace/new", headers=default, json={"name": "Mine"}).status_code == 403
    client.post("/api/v1/workspace/new", headers=admin, json={"name": "Private"})
    # a default user sees only workspaces they belong to
    assert client.get("/api/v1/workspaces", headers=default).json()["workspaces"] == []
    hidden = client.get("/api/v1/workspace/team", headers=default)  # as if it did not exist
    assert hidden.status_code == 200 and hidden.json() == {"workspace": []}
    team_id = client.get("/api/v1/workspace/team", headers=admin).json()["workspace"][0]["id"]
    managed = client.post("/api/v1/admin/workspaces/team/manage-users", headers=manager,
                          json={"userIds": [keys["default_id"], 999]}).json()
    assert managed["success"] is True and [u["userId"] for u in managed["users"]] == [keys["default_id"]]
    assert [w["slug"] for w in client.get("/api/v1/workspaces", headers=default).json()["workspaces"]] == ["team"]
    members = client.get(f"/api/v1/admin/workspaces/{team_id}/users", headers=admin).json()["users"]
    assert members == [{"userId": keys["default_id"], "username": "default-user", "role": "default",
                        "lastUpdatedAt": members[0]["lastUpdatedAt"]}]
    assert client.get(f"/api/v1/admin/workspaces/{team_id}/users", headers=default).status_code == 403
    nobody = client.post("/api/v1/admin/workspaces/team/manage-users", headers=admin, json={"userIds": [999]})
    assert nobody.status_code == 404 and nobody.json()["error"] == "No valid user IDs provided."
    replaced = client.post(f"/api/v1/admin/workspaces/{team_id}/update-users", headers=admin,
                           json={"userIds": [keys["manager_id"]]})
    assert replaced.json() == {"success": True, "error": None}
    assert client.get("/api/v1/workspaces", headers=default).json()["workspaces"] == []
    doc = _raw(client, keys["admin"], "cats", FACTS["cats"], "team")
    pin = client.post("/api/v1/workspace/team/update-pin", headers=admin, json={"docPath": doc["location"], "pinStatus": True})
    assert pin.json() == {"message": "Pin status updated successfully"}
    pinned = client.get("/api/v1/workspace/team", headers=admin).json()["workspace"][0]["documents"][0]
    assert pinned["pinned"] is True
    missing = client.post("/api/v1/workspace/team/update-pin", headers=admin, json={"docPath": "x/y.json", "pinStatus": True})
    assert missing.status_code == 404
    assert client.post("/api/v1/workspace/nope/update-pin", headers=admin, json={"docPath": "x/y.json"}).status_code == 404


def test_membership_routes_need_multi_user_mode(client):
    key = owner_key(client)
    client.post("/api/v1/workspace/new", headers=bearer(key), json={"name": "Solo"})
    assert client.get("/api/v1/admin/workspaces/1/users", headers=bearer(key)).status_code == 401
    assert client.post("/api/v1/admin/workspaces/solo/manage-users", headers=bearer(key),
                       json={"userIds": [1]}).status_code == 401


def test_system_settings_never_show_secrets(client, backend):
    keys = multi_user_keys(client)
    admin = bearer(keys["admin"])
    secret = "sk-live-provider-key-42"
    response = client.post("/api/v1/system/update-env", headers=admin, json={
        "LLMProvider": "generic-openai", "GenericOpenAiKey": secret, "AuthToken": "x", "Bogus": "y",
        "OpenAiKey": "******"})
    body = response.json()
    assert response.status_code == 200 and secret not in response.text
    assert body["newValues"] == {"LLMProvider": "generic-openai", "GenericOpenAiKey": "**********"}
    assert "AuthToken" in body["error"] and "Bogus" in body["error"]
    settings = client.get("/api/v1/system", headers=admin).json()["settings"]
    assert settings["LLMProvider"] == "generic-openai" and settings["GenericOpenAiKey"] is True
    assert settings["OpenAiKey"] is False and secret not in str(settings)
    changed = [e["state"] for e in backend.raw_events() if e["topic"].endswith("System.SettingsChanged")]
    assert changed == [{**changed[0], "values": {"LLMProvider": "generic-openai"}, "secret_keys": ["GenericOpenAiKey"]}]
    assert changed[0]["actor_api_key_id"] is not None
    assert secret.encode() not in backend.all_stored_bytes()
    bad = client.post("/api/v1/system/update-env", headers=admin, json={"LLMProvider": 5})
    assert bad.status_code == 400
    assert client.post("/api/v1/system/update-env", headers=bearer(keys["manager"]), json={}).status_code == 403
    assert client.get("/api/v1/system/env-dump").status_code == 403  # upstream needs no key here
    assert client.get("/api/v1/system/env-dump", headers=bearer(keys["manager"])).status_code == 403
    assert client.get("/api/v1/system/env-dump", headers=admin).status_code == 200


def test_openai_embeddings_and_vector_stores(client):
    key = owner_key(client)
    client.post("/api/v1/workspace/new", headers=bearer(key), json={"name": "Store"})
    _raw(client, key, "cats", FACTS["cats"], "store")
    one = client.post("/api/v1/openai/embeddings", headers=bearer(key), json={"input": "hello"}).json()
    assert one["object"] == "list" and len(one["data"]) == 1 and len(one["data"][0]["embedding"]) == 384
    legacy = client.post("/api/v1/openai/embeddings", headers=bearer(key), json={"inputs": ["a", "b"]}).json()
    assert [d["index"] for d in legacy["data"]] == [0, 1]
    for bad in ({"input": ""}, {"input": []}, {"input": [1]}, {}):
        response = client.post("/api/v1/openai/embeddings", headers=bearer(key), json=bad)
        assert response.status_code == 400, bad
    stores = client.get("/api/v1/openai/vector_stores", headers=bearer(key)).json()
    assert stores["has_more"] is False and stores["first_id"] == "store"
    assert stores["data"] == [{"id": "store", "object": "vector_store", "name": "Store",
                               "file_counts": {"total": 1}, "provider": "faiss"}]


def test_embeds_crud_for_admins(client):
    keys = multi_user_keys(client)
    admin = bearer(keys["admin"])
    client.post("/api/v1/workspace/new", headers=admin, json={"name": "Widget"})
    assert client.post("/api/v1/embed/new", headers=admin, json={}).json() == {"embed": None,
                                                                               "error": "Workspace slug is required"}
    assert client.post("/api/v1/embed/new", headers=admin, json={"workspace_slug": "nope"}).status_code == 404
    wrong = client.post("/api/v1/embed/new", headers=admin, json={"workspace_slug": "widget", "allowlist_domains": 5})
    assert wrong.status_code == 400  # upstream stores null here, opening the embed to every origin
    embed = client.post("/api/v1/embed/new", headers=admin, json={
        "workspace_slug": "widget", "allowlist_domains": "https://a.example, https://b.example",
        "max_chats_per_day": 10, "allow_model_override": "yes"}).json()["embed"]
    assert embed["enabled"] is True and embed["chat_mode"] == "query" and embed["workspace"]["name"] == "Widget"
    assert embed["allowlist_domains"] == ["https://a.example", "https://b.example"]
    assert embed["allow_model_override"] is False  # strict booleans, as upstream
    listed = client.get("/api/v1/embed", headers=admin).json()["embeds"]
    assert [e["uuid"] for e in listed] == [embed["uuid"]] and listed[0]["chat_count"] == 0
    assert client.post(f"/api/v1/embed/{embed['uuid']}", headers=admin, json={"chat_mode": "chat"}).json()["success"]
    assert client.get(f"/api/v1/embed/{embed['uuid']}/chats", headers=admin).json() == {"chats": []}
    assert client.get("/api/v1/embed/nope/chats", headers=admin).status_code == 404
    assert client.get("/api/v1/embed", headers=bearer(keys["manager"])).status_code == 403
    assert client.delete(f"/api/v1/embed/{embed['uuid']}", headers=admin).json() == {"success": True, "error": None}
    assert client.delete(f"/api/v1/embed/{embed['uuid']}", headers=admin).status_code == 404

"""Chat on the user behind the key, through litellm to a real loopback model server."""

from __future__ import annotations

import json

from application.context_window import total_tokens
from infrastructure.tokenizer import Tokenizer
from tests.support.app import bearer, client_for, multi_user_keys, owner_key

RESPONSE_FIELDS = {"id", "type", "textResponse", "sources", "close", "error", "chatId", "metrics"}


def _model_tokens(request) -> int:
    return total_tokens(Tokenizer(), request.body["messages"])


def test_seed_regression_api_key_chats_keep_their_user_and_never_overflow(backend, llm, llm_settings):
    """The bug this project exists for: with AnythingLLM, chats sent with an API key are stored
    with no user, and once history outgrows the window the compressor crashes."""
    key = backend.cli("api-keys", "create", "--name", "seed").stdout.strip()
    with client_for(backend, **llm_settings) as client:
        key_id = client.get("/api/system/api-keys", headers=bearer(key)).json()["apiKeys"][0]["id"]
        assert client.post("/api/v1/workspace/new", headers=bearer(key), json={"name": "test"}).status_code == 200
        for i in range(20):
            llm.reply(f"Reply {i} " + "lorem ipsum dolor " * 40)
            response = client.post("/api/v1/workspace/test/chat", headers=bearer(key),
                                   json={"message": f"Message {i}", "mode": "chat"})
            assert response.status_code == 200, response.text
            body = response.json()
            assert RESPONSE_FIELDS <= set(body) and body["type"] == "textResponse"
            assert body["textResponse"].startswith(f"Reply {i}") and body["error"] is None
        llm.reply("I read your very long message.")
        huge = "BEGIN " + "a long prompt that never ends " * 3000 + " END"
        response = client.post("/api/v1/workspace/test/chat", headers=bearer(key), json={"message": huge, "mode": "chat"})
        assert response.status_code == 200 and response.json()["textResponse"] == "I read your very long message."
        history = client.get("/api/v1/workspace/test/chats", headers=bearer(key)).json()["history"]
        assert len(history) == 42 and history[0] == {**history[0], "role": "user", "content": "Message 0"}
        with client.app.state.runtime.ctx.chats.view.read() as tx:  # the history read model itself
            rows = tx.all("SELECT user_id, api_key_id FROM chats ORDER BY position")
        assert rows == [{"user_id": 1, "api_key_id": key_id}] * 21
    for request in llm.chat_requests:
        assert _model_tokens(request) <= 4096, "the model received more than its window"
        assert request.headers["authorization"] == f"Bearer {llm_settings['llm_api_key']}"
    assert llm.chat_requests[-1].body["messages"][-1]["content"].startswith("BEGIN")
    recorded = [e["state"] for e in backend.raw_events() if e["topic"].endswith("Chat.Recorded")]
    assert len(recorded) == 21
    for state in recorded:
        assert state["user_id"] == 1 and state["actor_user_id"] == 1 and state["actor_api_key_id"] == key_id
        assert state["status"] == "ok" and state["model"] == "openai/test-model"


def test_two_users_never_see_each_others_history_and_resets_are_scoped(backend, llm, llm_settings):
    with client_for(backend, **llm_settings) as client:
        keys = multi_user_keys(client)
        admin, alice = bearer(keys["admin"]), bearer(keys["default"])
        client.post("/api/v1/workspace/new", headers=admin, json={"name": "shared"})
        client.post("/api/v1/admin/workspaces/shared/manage-users", headers=admin, json={"userIds": [keys["default_id"]]})
        client.post("/api/v1/workspace/shared/chat", headers=admin, json={"message": "admin secret plan"})
        client.post("/api/v1/workspace/shared/chat", headers=alice, json={"message": "alice question"})
        client.post("/api/v1/workspace/shared/chat", headers=alice, json={"message": "alice in session", "sessionId": "s1"})
        thread = client.post("/api/v1/workspace/shared/thread/new", headers=alice, json={"name": "t"}).json()["thread"]
        client.post(f"/api/v1/workspace/shared/thread/{thread['slug']}/chat", headers=alice, json={"message": "alice thread"})
        llm.reset()
        client.post("/api/v1/workspace/shared/chat", headers=alice, json={"message": "what did I say?"})
        seen = json.dumps(llm.chat_requests[-1].body["messages"])
        assert "alice question" in seen and "admin secret plan" not in seen
        assert "alice in session" not in seen and "alice thread" not in seen
        mine = [h["content"] for h in client.get("/api/v1/workspace/shared/chats", headers=alice).json()["history"]
                if h["role"] == "user"]
        assert mine == ["alice question", "what did I say?"]
        # reset the default thread, no session: the session and the thread keep their history
        reset = client.post("/api/v1/workspace/shared/chat", headers=alice, json={"reset": True}).json()
        assert reset["textResponse"] == "Chat history was reset!"
        assert client.get("/api/v1/workspace/shared/chats", headers=alice).json()["history"] == []
        session = client.get("/api/v1/workspace/shared/chats?apiSessionId=s1", headers=alice).json()["history"]
        assert [h["content"] for h in session if h["role"] == "user"] == ["alice in session"]
        threaded = client.get(f"/api/v1/workspace/shared/thread/{thread['slug']}/chats", headers=alice).json()["history"]
        assert [h["content"] for h in threaded if h["role"] == "user"] == ["alice thread"]
        admins = client.get("/api/v1/workspace/shared/chats", headers=admin).json()["history"]
        assert [h["content"] for h in admins if h["role"] == "user"] == ["admin secret plan"]
        resets = [e["state"] for e in backend.raw_events() if e["topic"].endswith("HistoryReset.Recorded")]
        assert resets == [{**resets[0], "user_id": keys["default_id"], "thread_id": None, "session_id": None}]


def test_query_mode_refuses_without_context_and_uses_sources_with_it(backend, llm, llm_settings):
    with client_for(backend, **llm_settings) as client:
        key = owner_key(client)
        client.post("/api/v1/workspace/new", headers=bearer(key), json={"name": "docs"})
        refused = client.post("/api/v1/workspace/docs/chat", headers=bearer(key), json={"message": "hi", "mode": "query"})
        assert refused.json()["textResponse"] == "There is no relevant information in this workspace to answer your query."
        assert llm.chat_requests == []
        client.post("/api/v1/document/raw-text", headers=bearer(key), json={
            "textContent": "The office cat is named Pixel and sleeps on the server rack.",
            "metadata": {"title": "office"}, "addToWorkspaces": "docs"})
        llm.reply("Pixel.")
        answer = client.post("/api/v1/workspace/docs/chat", headers=bearer(key),
                             json={"message": "What is the office cat called?", "mode": "query"}).json()
        assert answer["textResponse"] == "Pixel." and answer["sources"][0]["title"] == "office"
        system = llm.chat_requests[-1].body["messages"][0]["content"]
        assert "Pixel" in system and "[CONTEXT 0]" in system


def test_bad_requests_and_provider_failures_answer_abort_objects(backend, llm, llm_settings):
    with client_for(backend, **llm_settings) as client:
        key = owner_key(client)
        client.post("/api/v1/workspace/new", headers=bearer(key), json={"name": "w"})
        empty = client.post("/api/v1/workspace/w/chat", headers=bearer(key), json={"message": ""})
        assert empty.status_code == 400 and empty.json()["type"] == "abort" and empty.json()["error"] == "Message is empty"
        mode = client.post("/api/v1/workspace/w/chat", headers=bearer(key), json={"message": "x", "mode": "bogus"})
        assert mode.status_code == 400 and mode.json()["error"] == "bogus is not a valid mode."
        unknown = client.post("/api/v1/workspace/nope/chat", headers=bearer(key), json={"message": "x"})
        assert unknown.status_code == 404 and unknown.json()["type"] == "abort"
        llm.reply_error(500, "model exploded")
        failed = client.post("/api/v1/workspace/w/chat", headers=bearer(key), json={"message": "x"})
        assert failed.status_code == 502 and failed.json()["type"] == "abort"
        assert "sk-test-provider" not in failed.text
        llm.hang_next()
        timed_out = client.post("/api/v1/workspace/w/chat", headers=bearer(key), json={"message": "x"})
        assert timed_out.status_code == 504 and timed_out.json()["type"] == "abort"
        statuses = [e["state"]["status"] for e in backend.raw_events() if e["topic"].endswith("Chat.Recorded")]
        assert statuses == ["failed", "failed"]
        # a failed exchange never becomes history
        llm.reset()
        client.post("/api/v1/workspace/w/chat", headers=bearer(key), json={"message": "after"})
        assert len(llm.chat_requests[-1].body["messages"]) == 2


def test_no_llm_configured_answers_503_with_what_to_set(backend):
    with client_for(backend) as client:
        key = owner_key(client)
        client.post("/api/v1/workspace/new", headers=bearer(key), json={"name": "w"})
        response = client.post("/api/v1/workspace/w/chat", headers=bearer(key), json={"message": "hi"})
        assert response.status_code == 503 and "LLM_MODEL" in response.json()["error"]


def test_images_reach_the_model_as_image_parts(backend, llm, llm_settings):
    with client_for(backend, **llm_settings) as client:
        key = owner_key(client)
        client.post("/api/v1/workspace/new", headers=bearer(key), json={"name": "w"})
        png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
        response = client.post("/api/v1/workspace/w/chat", headers=bearer(key), json={
            "message": "what is this?", "attachments": [{"name": "dot.png", "mime": "image/png", "contentString": png}]})
        assert response.status_code == 200
        parts = llm.chat_requests[-1].body["messages"][-1]["content"]
        assert parts[0] == {"type": "text", "text": "what is this?"}
        assert parts[1]["image_url"]["url"] == f"data:image/png;base64,{png}"
        bad = client.post("/api/v1/workspace/w/chat", headers=bearer(key), json={
            "message": "x", "attachments": [{"name": "a", "mime": "image/png", "contentString": "%%%"}]})
        assert bad.status_code == 400


def test_history_and_exports_are_identical_after_a_projection_rebuild(backend, llm, llm_settings):
    with client_for(backend, **llm_settings) as client:
        keys = multi_user_keys(client)
        admin = bearer(keys["admin"])
        client.post("/api/v1/workspace/new", headers=admin, json={"name": "w"})
        for i in range(5):
            client.post("/api/v1/workspace/w/chat", headers=admin, json={"message": f"=cmd {i}", "sessionId": "s"})
        client.post("/api/v1/workspace/w/chat", headers=admin, json={"message": "after reset", "reset": True})

        def snapshot():
            return (client.get("/api/v1/workspace/w/chats?apiSessionId=s", headers=admin).json(),
                    client.get("/api/v1/workspace/w/chats", headers=admin).json(),
                    *(client.get(f"/api/v1/system/export-chats?type={t}", headers=admin).text
                      for t in ("json", "jsonl", "csv", "jsonAlpaca")),
                    client.post("/api/v1/admin/workspace-chats", headers=admin, json={"offset": 0}).json())

        before = snapshot()
        runner = client.app.state.runtime.runner("chats")
        runner.reset()
        runner.catch_up()
        assert snapshot() == before
    csv_text = before[4]
    assert "'=cmd 0" in csv_text  # formula cells are defused
    assert len(before[0]["history"]) == 10


def test_threads_lifecycle(backend, llm, llm_settings):
    with client_for(backend, **llm_settings) as client:
        keys = multi_user_keys(client)
        admin, manager = bearer(keys["admin"]), bearer(keys["manager"])
        client.post("/api/v1/workspace/new", headers=admin, json={"name": "w"})
        made = client.post("/api/v1/workspace/w/thread/new", headers=manager, json={"name": "Plans", "slug": "Plans-1"})
        thread = made.json()["thread"]
        assert made.status_code == 200 and thread["slug"] == "Plans-1" and thread["user_id"] == keys["manager_id"]
        dup = client.post("/api/v1/workspace/w/thread/new", headers=admin, json={"slug": "Plans-1"})
        assert dup.status_code == 409 and dup.json()["thread"] is None
        assert [t["name"] for t in client.get("/api/v1/workspace/w/threads", headers=manager).json()["threads"]] == ["Plans"]
        assert client.get("/api/v1/workspace/w/threads", headers=admin).json()["threads"] == []
        renamed = client.post("/api/v1/workspace/w/thread/Plans-1/update", headers=manager, json={"name": "Roadmap"})
        assert renamed.json()["thread"]["name"] == "Roadmap"
        # another non-admin user cannot use it
        other = client.post("/api/v1/workspace/w/thread/Plans-1/chat", headers=bearer(keys["default"]), json={"message": "x"})
        assert other.status_code == 404
        chatted = client.post("/api/v1/workspace/w/thread/Plans-1/chat", headers=manager, json={"message": "hi"})
        assert chatted.status_code == 200
        assert len(client.get("/api/v1/workspace/w/thread/Plans-1/chats", headers=manager).json()["history"]) == 2
        # userId is honoured for admins only, and checked
        as_user = client.post("/api/v1/workspace/w/thread/Plans-1/chat", headers=manager,
                              json={"message": "x", "userId": keys["admin_id"]})
        assert as_user.status_code == 403
        assert client.delete("/api/v1/workspace/w/thread/Plans-1", headers=manager).status_code == 200
        assert client.get("/api/v1/workspace/w/thread/Plans-1/chats", headers=manager).status_code == 404


def test_openai_models_and_sync_completions(backend, llm, llm_settings):
    with client_for(backend, **llm_settings) as client:
        key = owner_key(client)
        client.post("/api/v1/workspace/new", headers=bearer(key), json={"name": "bot"})
        models = client.get("/api/v1/openai/models", headers=bearer(key)).json()
        assert models["object"] == "list" and models["data"][0]["id"] == "bot"
        llm.reply("Four.")
        done = client.post("/api/v1/openai/chat/completions", headers=bearer(key), json={
            "model": "bot", "messages": [{"role": "system", "content": "Answer in one word."},
                                         {"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"},
                                         {"role": "user", "content": "Spell it."}]}).json()
        assert done["object"] == "chat.completion" and done["choices"][0]["message"]["content"] == "Four."
        sent = llm.chat_requests[-1].body["messages"]
        assert sent[0] == {"role": "system", "content": "Answer in one word."}
        assert [m["content"] for m in sent[1:]] == ["2+2?", "4", "Spell it."]
        bad = client.post("/api/v1/openai/chat/completions", headers=bearer(key), json={
            "model": "bot", "messages": [{"role": "assistant", "content": "x"}]})
        assert bad.status_code == 400
        unknown = client.post("/api/v1/openai/chat/completions", headers=bearer(key), json={
            "model": "nope", "messages": [{"role": "user", "content": "x"}]})
        assert unknown.status_code == 401 and unknown.json()["error"]["type"] == "authentication_error"


def _sse(text: str) -> list[dict]:
    return [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]


def test_embed_widget_chats_are_attributed_scoped_and_limited(backend, llm, llm_settings):
    with client_for(backend, **llm_settings) as client:
        key = owner_key(client)
        client.post("/api/v1/workspace/new", headers=bearer(key), json={"name": "site"})
        embed = client.post("/api/v1/embed/new", headers=bearer(key), json={
            "workspace_slug": "site", "chat_mode": "chat", "allowlist_domains": "https://site.example",
            "max_chats_per_session": 2}).json()["embed"]
        url = f"/api/embed/{embed['uuid']}/stream-chat"
        origin = {"Origin": "https://site.example"}
        refused = client.post(url, json={"sessionId": "v1", "message": "hi"}, headers={"Origin": "https://evil.example"})
        assert refused.status_code == 403 and refused.json()["type"] == "abort"
        llm.reply("Welcome!")
        frames = _sse(client.post(url, json={"sessionId": "v1", "message": "hi"}, headers=origin).text)
        assert frames[-1]["type"] == "finalizeResponseStream"
        assert "".join(f["textResponse"] for f in frames if f["type"] == "textResponseChunk") == "Welcome!"
        client.post(url, json={"sessionId": "v2", "message": "other visitor"}, headers=origin)
        history = client.get(f"/api/embed/{embed['uuid']}/v1", headers=origin).json()["history"]
        assert [h["content"] for h in history] == ["hi", "Welcome!"]
        client.post(url, json={"sessionId": "v1", "message": "second"}, headers=origin)
        over = client.post(url, json={"sessionId": "v1", "message": "third"}, headers=origin)
        assert over.status_code == 429 and "limit" in over.json()["error"]
        assert client.delete(f"/api/embed/{embed['uuid']}/v1", headers=origin).json()["success"] is True
        assert client.get(f"/api/embed/{embed['uuid']}/v1", headers=origin).json()["history"] == []
        assert len(client.get(f"/api/embed/{embed['uuid']}/v2", headers=origin).json()["history"]) == 2
        listed = client.get(f"/api/v1/embed/{embed['uuid']}/chats", headers=bearer(key)).json()["chats"]
        assert len(listed) == 3 and "connection_information" not in listed[0]
        assert client.get("/api/v1/embed", headers=bearer(key)).json()["embeds"][0]["chat_count"] == 3
        assert client.get("/api/embed/nope/v1").status_code == 404
    recorded = [e["state"] for e in backend.raw_events() if e["topic"].endswith("Chat.Recorded")]
    assert {r["embed_id"] for r in recorded} == {embed["id"]} and {r["actor_user_id"] for r in recorded} == {1}

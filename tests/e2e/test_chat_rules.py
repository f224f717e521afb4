"""Chat rules that hold through HTTP: embed limits under parallel requests, key scopes on
history and threads, CSV export defusing, per-workspace thread slugs, OpenAI content parts."""

from __future__ import annotations

import csv
import io
import json
from concurrent.futures import ThreadPoolExecutor

from tests.support.app import bearer, client_for, multi_user_keys, owner_key


def test_an_embed_session_limit_holds_under_parallel_chats(backend, llm, llm_settings):
    with client_for(backend, **llm_settings) as client:
        key = owner_key(client)
        client.post("/api/v1/workspace/new", headers=bearer(key), json={"name": "site"})
        embed = client.post("/api/v1/embed/new", headers=bearer(key), json={
            "workspace_slug": "site", "chat_mode": "chat", "max_chats_per_session": 2}).json()["embed"]
        url = f"/api/embed/{embed['uuid']}/stream-chat"

        def send(i: int) -> int:
            return client.post(url, json={"sessionId": "racer", "message": f"hi {i}"}).status_code

        with ThreadPoolExecutor(max_workers=20) as pool:
            statuses = list(pool.map(send, range(20)))
        assert sorted(statuses) == [200, 200] + [429] * 18, statuses
        chats = client.get(f"/api/v1/embed/{embed['uuid']}/chats", headers=bearer(key)).json()["chats"]
        assert len(chats) == 2
        # another session has its own allowance
        assert client.post(url, json={"sessionId": "other", "message": "hello"}).status_code == 200
    reserved = [e for e in backend.raw_events() if e["topic"].endswith("EmbedChatSlot")
                or "EmbedChatSlot.Reserved" in e["topic"]]
    assert len(reserved) == 3


def test_an_embed_daily_limit_holds_under_parallel_chats(backend, llm, llm_settings):
    with client_for(backend, **llm_settings) as client:
        key = owner_key(client)
        client.post("/api/v1/workspace/new", headers=bearer(key), json={"name": "site"})
        embed = client.post("/api/v1/embed/new", headers=bearer(key), json={
            "workspace_slug": "site", "chat_mode": "chat", "max_chats_per_day": 3}).json()["embed"]
        url = f"/api/embed/{embed['uuid']}/stream-chat"
        with ThreadPoolExecutor(max_workers=12) as pool:
            statuses = list(pool.map(lambda i: client.post(url, json={"sessionId": f"s{i}", "message": "hi"}).status_code,
                                     range(12)))
        assert sorted(statuses) == [200] * 3 + [429] * 9, statuses


def test_a_chat_key_chats_and_reads_its_history_but_needs_write_for_threads(backend, llm, llm_settings):
    with client_for(backend, **llm_settings) as client:
        admin = owner_key(client)
        client.post("/api/v1/workspace/new", headers=bearer(admin), json={"name": "w"})
        chat_only = owner_key(client, scopes=("chat",))
        h = bearer(chat_only)
        assert client.post("/api/v1/workspace/w/chat", headers=h, json={"message": "hello"}).status_code == 200
        history = client.get("/api/v1/workspace/w/chats", headers=h)
        assert history.status_code == 200 and [m["content"] for m in history.json()["history"]][0] == "hello"
        thread = client.post("/api/v1/workspace/w/thread/new", headers=h, json={"slug": "mine"})
        assert thread.status_code == 200, thread.text
        assert client.post("/api/v1/workspace/w/thread/mine/chat", headers=h, json={"message": "x"}).status_code == 200
        assert client.get("/api/v1/workspace/w/thread/mine/chats", headers=h).status_code == 200
        renamed = client.post("/api/v1/workspace/w/thread/mine/update", headers=h, json={"name": "new"})
        assert renamed.status_code == 403 and "write" in renamed.json()["error"]  # a refused key: {error}, as upstream
        assert client.delete("/api/v1/workspace/w/thread/mine", headers=h).status_code == 403
        assert client.post("/api/v1/workspace/w/thread/mine/update", headers=bearer(admin),
                           json={"name": "new"}).json()["thread"]["name"] == "new"


def test_deleting_someone_elses_thread_is_not_found_and_deletes_nothing(backend, llm, llm_settings):
    with client_for(backend, **llm_settings) as client:
        keys = multi_user_keys(client)
        client.post("/api/v1/workspace/new", headers=bearer(keys["admin"]), json={"name": "w"})
        client.post("/api/v1/admin/workspaces/w/manage-users", headers=bearer(keys["admin"]),
                    json={"userIds": [keys["manager_id"], keys["default_id"]]})
        made = client.post("/api/v1/workspace/w/thread/new", headers=bearer(keys["manager"]), json={"slug": "his"})
        assert made.status_code == 200, made.text
        other = client.delete("/api/v1/workspace/w/thread/his", headers=bearer(keys["default"]))
        absent = client.delete("/api/v1/workspace/w/thread/nothing-here", headers=bearer(keys["default"]))
        assert other.status_code == absent.status_code == 404
        assert other.json() == absent.json() == {"thread": None, "message": "Thread not found"}
        listed = client.get("/api/v1/workspace/w/threads", headers=bearer(keys["manager"])).json()["threads"]
        assert [t["slug"] for t in listed] == ["his"]
        gone = client.delete("/api/v1/workspace/w/thread/his", headers=bearer(keys["manager"]))
        assert gone.status_code == 200 and gone.text == ""


def test_thread_slugs_are_unique_per_workspace_only(backend, llm, llm_settings):
    with client_for(backend, **llm_settings) as client:
        keys = multi_user_keys(client)
        admin = bearer(keys["admin"])
        for name in ("a", "b"):
            client.post("/api/v1/workspace/new", headers=admin, json={"name": name})
        client.post("/api/v1/admin/workspaces/b/manage-users", headers=admin, json={"userIds": [keys["default_id"]]})
        assert client.post("/api/v1/workspace/a/thread/new", headers=admin, json={"slug": "plans"}).status_code == 200
        # a user who cannot see workspace a may use the same slug in b: nothing reveals a's thread
        mine = client.post("/api/v1/workspace/b/thread/new", headers=bearer(keys["default"]), json={"slug": "plans"})
        assert mine.status_code == 200 and mine.json()["thread"]["slug"] == "plans", mine.text
        again = client.post("/api/v1/workspace/a/thread/new", headers=admin, json={"slug": "plans"})
        assert again.status_code == 409 and again.json()["thread"] is None
        assert client.post("/api/v1/workspace/b/thread/plans/chat", headers=bearer(keys["default"]),
                           json={"message": "hi"}).status_code == 200
        chats = client.get("/api/v1/workspace/a/thread/plans/chats", headers=admin).json()["history"]
        assert chats == []


DANGEROUS = ["=1+1", "+SUM(A1)", "-2+3", "@cmd", "\tx", "\rx", " =HYPERLINK(1)", "\n=1", "\u200b=1", "\ufeff@x",
             "\uff1d1+1", "\uff0b1", "\uff0d1", "\uff20x", "  \u200d+1"]
PLAIN = ["hello", "a=b", "1-2", "mail me @ home", "", "x\n=y"]


def test_the_csv_export_defuses_formulas_and_leaves_plain_values(backend, llm, llm_settings):
    with client_for(backend, **llm_settings) as client:
        key = owner_key(client)
        client.post("/api/v1/workspace/new", headers=bearer(key), json={"name": "w"})
        prompts = DANGEROUS + [p for p in PLAIN if p]
        for prompt in prompts:
            llm.reply("ok")
            sent = client.post("/api/v1/workspace/w/chat", headers=bearer(key), json={"message": prompt})
            assert sent.status_code == 200, (prompt, sent.text)
        export = client.get("/api/v1/system/export-chats", headers=bearer(key), params={"type": "csv"})
        assert export.status_code == 200 and export.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(export.text)))
        by_prompt = {r["prompt"]: r for r in rows}
        for prompt in DANGEROUS:
            assert "'" + prompt in by_prompt, (prompt, list(by_prompt))
        for prompt in PLAIN[:-2] + PLAIN[-1:]:
            assert prompt in by_prompt, prompt
        assert {r["rating"] for r in rows} == {""}
        as_json = client.get("/api/v1/system/export-chats", headers=bearer(key), params={"type": "json"})
        assert as_json.headers["content-type"].startswith("application/json")
        assert {r["rating"] for r in as_json.json()} == {"--"} and {r["prompt"] for r in as_json.json()} == set(prompts)
        lines = client.get("/api/v1/system/export-chats", headers=bearer(key), params={"type": "jsonl"})
        assert len([json.loads(line) for line in lines.text.splitlines()]) == len(prompts)


def test_malformed_openai_content_parts_are_a_bad_request(backend, llm, llm_settings):
    with client_for(backend, **llm_settings) as client:
        key = owner_key(client)
        client.post("/api/v1/workspace/new", headers=bearer(key), json={"name": "bot"})
        url = "/api/v1/openai/chat/completions"
        for content in ([{"type": "text"}], [{"type": "video", "url": "x"}], [{"type": "image_url", "image_url": "x"}],
                        [{"type": "image_url", "image_url": {}}], [{"text": "no type"}], [3], {"type": "text"}):
            answer = client.post(url, headers=bearer(key), json={
                "model": "bot", "messages": [{"role": "user", "content": content}]})
            assert answer.status_code == 400, (content, answer.text)
            error = answer.json()["error"]
            assert set(error) == {"message", "type", "param", "code"} and error["type"] == "invalid_request_error"
        llm.reply("fine")
        good = client.post(url, headers=bearer(key), json={"model": "bot", "messages": [
            {"role": "user", "content": [{"type": "text", "text": "describe"}]}]})
        assert good.status_code == 200 and good.json()["choices"][0]["message"]["content"] == "fine"
    assert not [e for e in backend.raw_events() if e["topic"].endswith("Chat.Recorded")][1:]


def test_an_archive_follows_the_export_by_cursor_and_by_time(backend, llm, llm_settings):
    with client_for(backend, **llm_settings) as client:
        key = owner_key(client)
        h = bearer(key)
        client.post("/api/v1/workspace/new", headers=h, json={"name": "w"})

        def send(prompt: str) -> None:
            assert client.post("/api/v1/workspace/w/chat", headers=h, json={"message": prompt}).status_code == 200

        def export(**params: str | int) -> list[dict]:
            got = client.get("/api/v1/system/export-chats", headers=h, params={"type": "jsonl", **params})
            assert got.status_code == 200, got.text
            return [json.loads(line) for line in got.text.splitlines()]

        for prompt in ("one", "two"):
            send(prompt)
        first = export()
        assert [r["prompt"] for r in first] == ["one", "two"]
        for prompt in ("three", "four", "five"):
            send(prompt)
        newer = export(after=first[-1]["id"])
        assert [r["prompt"] for r in newer] == ["three", "four", "five"]
        assert export(after=newer[-1]["id"]) == []
        since = export(since=newer[1]["sent_at"])
        assert [r["prompt"] for r in since][-2:] == ["four", "five"] and "two" not in [r["prompt"] for r in since]
        both = export(after=newer[0]["id"], since=first[0]["sent_at"])
        assert [r["prompt"] for r in both] == ["four", "five"]
        as_csv = client.get("/api/v1/system/export-chats", headers=h, params={"type": "csv", "after": newer[1]["id"]})
        assert [r["prompt"] for r in csv.DictReader(io.StringIO(as_csv.text))] == ["five"]
        for bad in ({"after": 999999}, {"after": "x"}, {"after": 0}, {"since": "yesterday"}):
            refused = client.get("/api/v1/system/export-chats", headers=h, params={"type": "jsonl", **bad})
            assert refused.status_code == 400 and refused.headers["content-type"].startswith("application/json"), \
                (bad, refused.status_code, refused.text)

"""Streaming chat and the OpenAI SDK against a real `ledgerllm serve` process."""

from __future__ import annotations

import json
import time

import httpx
import openai

from tests.support.process import running_server

PROVIDER = {"LLM_MODEL": "openai/test-model", "LLM_CONTEXT_WINDOW": "4096", "LLM_TIMEOUT": "10"}


def _serve(backend, tmp_path, llm):
    env = {**PROVIDER, "LLM_API_BASE": llm.base_url, "LLM_API_KEY": "sk-test-provider-key-9f8e7d"}
    return running_server(backend, tmp_path / "server.log", env=env)


def _setup(backend, server):
    key = backend.cli("api-keys", "create").stdout.strip()
    headers = {"Authorization": f"Bearer {key}"}
    httpx.post(server.url + "/api/v1/workspace/new", headers=headers, json={"name": "live"}, timeout=30).raise_for_status()
    return key, headers


def _frames(response) -> list[tuple[float, dict]]:
    out = []
    for line in response.iter_lines():
        if line.startswith("data: "):
            out.append((time.monotonic(), json.loads(line[6:])))
    return out


def test_stream_chat_frames_arrive_before_the_model_finishes_and_match_the_record(sqlite_backend, tmp_path, llm):
    with _serve(sqlite_backend, tmp_path, llm) as server:
        _, headers = _setup(sqlite_backend, server)
        httpx.post(server.url + "/api/v1/workspace/live/chat", headers=headers, json={"message": "warm up"}, timeout=60)
        reply = "one two three four five six seven eight"
        llm.reply_slow(reply, 0.15)
        started = time.monotonic()
        with httpx.stream("POST", server.url + "/api/v1/workspace/live/stream-chat", headers=headers,
                          json={"message": "count", "mode": "chat"}, timeout=30) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            assert response.headers["cache-control"] == "no-cache"
            frames = _frames(response)
        finished = time.monotonic()
        chunks = [f for _, f in frames if f["type"] == "textResponseChunk" and not f["close"]]
        # tokens arrive as the model makes them (8 tokens, 0.15 s apart), not all at the end
        assert len(chunks) >= 8 and finished - frames[0][0] > 0.7 and frames[0][0] - started < 1.0
        first = chunks[0]
        assert set(first) == {"uuid", "sources", "type", "textResponse", "close", "error"} and first["error"] is False
        closing = [f for _, f in frames if f["type"] == "textResponseChunk" and f["close"]]
        assert len(closing) == 1 and closing[0]["textResponse"] == ""
        final = frames[-1][1]
        assert final["type"] == "finalizeResponseStream" and final["close"] is True and final["chatId"]
        assert {"uuid", "metrics", "sources"} <= set(final)
        streamed = "".join(c["textResponse"] for c in chunks)
        assert streamed == reply
        history = httpx.get(server.url + "/api/v1/workspace/live/chats", headers=headers, timeout=30).json()["history"]
        assert history[-1]["content"] == streamed and history[-1]["chatId"] == final["chatId"]
    recorded = [e for e in sqlite_backend.events() if type(e).__qualname__ == "Chat.Recorded"]  # sealed: opened
    assert recorded[-1].response == reply and recorded[-1].status == "ok"


def test_a_client_that_disconnects_stops_the_model_and_the_partial_exchange_is_recorded(sqlite_backend, tmp_path, llm):
    with _serve(sqlite_backend, tmp_path, llm) as server:
        _, headers = _setup(sqlite_backend, server)
        llm.reply_slow(" ".join(f"w{i}" for i in range(200)), 0.05)
        with httpx.stream("POST", server.url + "/api/v1/workspace/live/stream-chat", headers=headers,
                          json={"message": "talk a lot"}, timeout=30) as response:
            for line in response.iter_lines():
                if line.startswith("data: ") and json.loads(line[6:])["textResponse"]:
                    break  # leave after the first token
        assert llm.wait_for_disconnects(1, timeout=10), "the upstream stream was not closed"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            states = [e["state"] for e in sqlite_backend.raw_events() if e["topic"].endswith("Chat.Recorded")]
            if states:
                break
            time.sleep(0.1)
        assert states[-1]["status"] == "partial" and states[-1]["include"] is False
        opened = [e for e in sqlite_backend.events() if type(e).__qualname__ == "Chat.Recorded"]  # sealed: opened
        assert opened[-1].response.startswith("w0")


def test_stream_errors_and_refusals_use_upstream_frames(sqlite_backend, tmp_path, llm):
    with _serve(sqlite_backend, tmp_path, llm) as server:
        _, headers = _setup(sqlite_backend, server)
        bad = httpx.post(server.url + "/api/v1/workspace/live/stream-chat", headers=headers, json={"message": ""},
                         timeout=30)
        assert bad.status_code == 400 and bad.json()["type"] == "abort"
        llm.reply_error(500, "boom")
        with httpx.stream("POST", server.url + "/api/v1/workspace/live/stream-chat", headers=headers,
                          json={"message": "x"}, timeout=30) as response:
            frames = [f for _, f in _frames(response)]
        assert frames[-1]["type"] == "abort" and frames[-1]["close"] is True and frames[-1]["error"]
        with httpx.stream("POST", server.url + "/api/v1/workspace/live/stream-chat", headers=headers,
                          json={"message": "x", "mode": "query"}, timeout=30) as response:
            frames = [f for _, f in _frames(response)]
        assert len(frames) == 1 and frames[0]["type"] == "textResponse" and frames[0]["close"] is True


def test_the_openai_sdk_works_against_the_compatible_endpoints(sqlite_backend, tmp_path, llm):
    with _serve(sqlite_backend, tmp_path, llm) as server:
        key, _ = _setup(sqlite_backend, server)
        sdk = openai.OpenAI(base_url=server.url + "/api/v1/openai", api_key=key, max_retries=0)
        assert [m.id for m in sdk.models.list()] == ["live"]
        llm.reply("Hello from the model.")
        done = sdk.chat.completions.create(model="live", messages=[{"role": "user", "content": "hi"}])
        assert done.choices[0].message.content == "Hello from the model." and done.usage.total_tokens > 0
        llm.reply_slow("streamed words arrive one by one", 0.02)
        pieces = [c.choices[0].delta.content or "" for c in sdk.chat.completions.create(
            model="live", messages=[{"role": "user", "content": "stream please"}], stream=True) if c.choices]
        assert "".join(pieces) == "streamed words arrive one by one" and len(pieces) > 3
        try:
            sdk.chat.completions.create(model="missing", messages=[{"role": "user", "content": "x"}])
            raise AssertionError("an unknown model must fail")
        except openai.AuthenticationError:
            pass

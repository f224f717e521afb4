"""kill -9 under load: a server killed while clients are creating workspaces, keys and chats
loses nothing it acknowledged and stores nothing twice; restarted, it serves on with a valid
chain and read models that match the log."""

from __future__ import annotations

import json
import signal
import threading
import time
import urllib.error
import urllib.request

from tests.support.process import ServerProcess, get

LLM = {"LLM_MODEL": "openai/test-model", "LLM_CONTEXT_WINDOW": "4096", "LLM_TIMEOUT": "10",
       "LLM_API_KEY": "sk-test-provider-key-9f8e7d"}
CLIENTS = 4
ACKS_BEFORE_KILL = 36  # acknowledged writes, of all kinds, before the kill; clients keep sending after


def post(url: str, key: str, body: dict) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST", headers={
        "Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as r:
        assert r.status == 200
        return json.loads(r.read())


def test_nothing_acknowledged_is_lost_or_doubled_by_kill_9(backend, tmp_path, llm):
    key = backend.cli("api-keys", "create", "--name", "ops").stdout.strip().splitlines()[-1]
    env = {**LLM, "LLM_API_BASE": llm.base_url}
    server = ServerProcess(backend, tmp_path / "first.log", env=env)
    server.wait_ready()
    post(server.url + "/api/v1/workspace/new", key, {"name": "talk"})
    acked: dict[str, list] = {"workspaces": [], "keys": [], "chats": []}
    lock = threading.Lock()
    enough = threading.Event()
    killed = threading.Event()

    def client(n: int) -> None:
        i = 0
        while not killed.is_set():
            i += 1
            try:
                name = f"w-{n}-{i}"
                post(server.url + "/api/v1/workspace/new", key, {"name": name})
                record("workspaces", name)
                made = post(server.url + "/api/system/generate-api-key", key, {"name": f"k-{n}-{i}"})["apiKey"]
                record("keys", (made["id"], made["secret"]))
                chat = post(server.url + "/api/v1/workspace/talk/chat", key,
                            {"message": f"m-{n}-{i}", "sessionId": f"s-{n}"})
                record("chats", (chat["chatId"], f"m-{n}-{i}"))
            except (OSError, urllib.error.URLError, AssertionError):
                if killed.is_set():
                    return
                raise

    def record(kind: str, value: object) -> None:
        with lock:
            acked[kind].append(value)
            if sum(map(len, acked.values())) >= ACKS_BEFORE_KILL:
                enough.set()

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(CLIENTS)]
    for t in threads:
        t.start()
    assert enough.wait(240), f"the load never reached {ACKS_BEFORE_KILL} acknowledged writes: {acked}"
    server.proc.send_signal(signal.SIGKILL)  # mid-request: the clients are still sending
    killed.set()
    server.proc.wait(60)
    for t in threads:
        t.join(120)
    with lock:
        acked = {kind: list(values) for kind, values in acked.items()}

    again = ServerProcess(backend, tmp_path / "second.log", env=env)
    try:
        again.wait_ready()
        names = [w["name"] for w in json.loads(get(again.url + "/api/v1/workspaces", key)[1])["workspaces"]]
        assert all(names.count(name) == 1 for name in acked["workspaces"]), "a workspace lost or doubled"
        assert len(names) == len(set(names)), "a workspace stored twice"
        listed = {k["id"] for k in json.loads(get(again.url + "/api/system/api-keys", key)[1])["apiKeys"]}
        for key_id, secret in acked["keys"]:
            assert key_id in listed
            assert get(again.url + "/api/v1/auth", secret)[0] == 200
        export = get(again.url + "/api/v1/system/export-chats?type=jsonl", key)[1].decode()
        exported = [json.loads(line) for line in export.splitlines()]
        ids = [c["id"] for c in exported]
        assert len(ids) == len(set(ids)), "a chat id given twice (an id block reused after the kill?)"
        prompts = {c["id"]: c["prompt"] for c in exported}
        for chat_id, prompt in acked["chats"]:
            assert prompts.get(chat_id) == prompt, (chat_id, prompt)
        # the restarted server takes new ids without colliding with the killed one's
        fresh = post(again.url + "/api/v1/workspace/talk/chat", key, {"message": "after", "sessionId": "after"})
        assert fresh["chatId"] not in prompts
    finally:
        again.stop()
    assert backend.cli("verify").returncode == 0
    assert backend.cli("audit", "verify").returncode == 0

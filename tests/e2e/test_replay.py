"""`ledgerllm replay --until POSITION|TIME --into DIR` and `ledgerllm serve --read-only` on DIR:
a store filled through HTTP on both backends, changed after a position P, replayed up to P as a
subprocess, then served by a real read-only server that shows the state at P and changes nothing."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
import time
from pathlib import Path
from urllib.parse import urlparse

import psycopg

from tests.support.app import LEDGERLLM, Backend, bearer, client_for, owner_key
from tests.support.process import get, running_server, send

READ_ONLY = "This server is read-only: a replay of the store at position {}."
CAT_TEXT = "A cat likes to sleep on a warm rug by the fire in the afternoon."


def _create_workspace(client, key: str, name: str) -> str:
    response = client.post("/api/v1/workspace/new", headers=bearer(key), json={"name": name})
    assert response.status_code == 200, response.text
    return response.json()["workspace"]["slug"]


def _new_key(client, key: str, **body) -> dict:
    response = client.post("/api/system/generate-api-key", headers=bearer(key), json=body)
    assert response.status_code == 200, response.text
    return response.json()["apiKey"]


def _head(backend: Backend) -> dict:
    [last] = [json.loads(line) for line in backend.cli("events", "tail", "--json", "-n", "1").stdout.splitlines()]
    return last


def _events(db: Path) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT rowid, originator_id, originator_version, topic, state FROM stored_events "
                            "ORDER BY rowid").fetchall()


def _chain(backend: Backend) -> dict[int, bytes]:
    """The source's digest chain, position → digest, read with plain SQL."""
    if backend.database_url:
        with psycopg.connect(backend.database_url) as conn:
            rows = conn.execute("SELECT position, digest FROM ledger_chain").fetchall()
    else:
        with sqlite3.connect(backend.data_dir / "events.db") as conn:
            rows = conn.execute("SELECT position, digest FROM ledger_chain").fetchall()
    return {p: bytes(d) for p, d in rows}


def _slugs(url: str, key: str) -> set[str]:
    status, body, _ = get(url + "/api/v1/workspaces", key)
    assert status == 200, body
    return {w["slug"] for w in json.loads(body)["workspaces"]}


def test_replay_serves_the_read_models_as_they_were_and_refuses_every_change(backend, tmp_path):
    with client_for(backend) as client:
        admin = owner_key(client)
        kept, doomed = _create_workspace(client, admin, "Kept"), _create_workspace(client, admin, "Doomed")
        doc = client.post("/api/v1/document/raw-text", headers=bearer(admin), json={
            "textContent": CAT_TEXT, "metadata": {"title": "cats"}, "addToWorkspaces": kept})
        assert doc.status_code == 200 and doc.json()["failedToEmbed"] == [], doc.text
        spare = _new_key(client, admin, name="spare")
        brief = _new_key(client, admin, name="brief", expiresIn="2s")  # expired before it is used below
        brief_made = time.monotonic()
        at_p = _head(backend)
        position = at_p["position"]
        time.sleep(0.05)  # events after P carry later times
        assert client.delete(f"/api/v1/workspace/{doomed}", headers=bearer(admin)).status_code == 200
        later = _create_workspace(client, admin, "Later")
        assert client.delete(f"/api/system/api-key/{spare['id']}", headers=bearer(admin)).status_code == 200
    source_events = backend.raw_events()
    assert source_events[-1]["position"] > position

    into = tmp_path / "replay"
    replay = backend.cli("replay", "--until", str(position), "--into", str(into))
    assert replay.stdout == f"{into}\t{position}\n"
    assert f"position {position}" in replay.stderr and "events/s" in replay.stderr
    assert "ledgerllm serve --read-only" in replay.stderr and "Traceback" not in replay.stderr
    assert "cached embeddings" in replay.stderr

    # DIR: exactly the events up to P at their own positions, a chain ending where the source's is at P
    events_db = into / "events.db"
    copied = _events(events_db)
    assert [row[0] for row in copied] == [e["position"] for e in source_events if e["position"] <= position]
    assert [(row[3], json.loads(row[4])) for row in copied] == [
        (e["topic"], e["state"]) for e in source_events if e["position"] <= position]
    manifest = json.loads((into / "replay.json").read_text())
    source_chain = _chain(backend)
    assert manifest["position"] == position and manifest["events"] == len(copied)
    assert manifest["head_digest"] == source_chain[position].hex() == manifest["source_link_digest"]
    assert manifest["time"][:19] == at_p["timestamp"][:19] and manifest["created"]
    if backend.database_url:  # blobs live in PostgreSQL: the replay holds copies of its own
        assert (into / "blobs").is_dir() and not (into / "blobs").is_symlink()
        assert any(p.is_file() for p in (into / "blobs").rglob("*"))
    else:
        assert (into / "blobs").is_symlink() and (into / "blobs").resolve() == (backend.data_dir / "blobs").resolve()
    for name in ("accounts", "api_keys", "library", "vectors", "chats", "audit_log"):
        assert (into / f"{name}.db").is_file(), name
    with sqlite3.connect(into / "vectors.db") as conn:
        assert conn.execute("SELECT COUNT(*) FROM embedding_cache").fetchone()[0] >= 1
        assert conn.execute("SELECT COUNT(*) FROM chunks").fetchone()[0] >= 1
    before = (copied, hashlib.sha256(events_db.read_bytes()).hexdigest())

    served = Backend("sqlite", into)  # DATA_DIR=DIR, no DATABASE_URL, no REDIS_URL
    with running_server(served, tmp_path / "read-only.log", "--read-only") as server:
        url = server.url
        status, _, headers = get(url + "/api/ping")
        assert status == 200 and headers.get("x-ledgerllm-read-only") == str(position)
        assert _slugs(url, admin) == {kept, doomed}  # deleted after P: still here; created after P: not
        assert later not in _slugs(url, admin)
        assert get(url + f"/api/v1/workspace/{doomed}", admin)[0] == 200
        assert get(url + "/api/v1/auth", spare["secret"])[:2] == (200, b'{"authenticated":true}')  # revoked after P
        time.sleep(max(0.0, brief_made + 2.5 - time.monotonic()))  # a fast replay and start beat the 2 s
        expired = get(url + "/api/v1/auth", brief["secret"])
        assert expired[0] == 403 and json.loads(expired[1]) == {"error": "No valid api key found."}
        assert get(url + "/api/v1/auth", brief["secret"])[0] == 403
        listed = json.loads(get(url + "/api/system/api-keys", admin)[1])["apiKeys"]
        assert spare["id"] in [k["id"] for k in listed]
        audit = json.loads(get(url + "/api/v1/admin/audit?limit=1000", admin)[1])
        assert audit["total"] == len(copied) and audit["events"][0]["position"] == position

        status, body = send("POST", url + f"/api/v1/workspace/{kept}/vector-search", admin,
                            json.dumps({"query": "Where does the cat sleep?", "scoreThreshold": 0}).encode())
        assert status == 200 and "rug" in json.loads(body)["results"][0]["text"], body

        refused = READ_ONLY.format(position)
        for method, path, payload in (
                ("POST", "/api/v1/workspace/new", {"name": "Nope"}),
                ("POST", f"/api/v1/workspace/{kept}/update", {"name": "Renamed"}),
                ("DELETE", f"/api/v1/workspace/{kept}", None),
                ("POST", "/api/v1/document/raw-text", {"textContent": "x", "metadata": {"title": "x"}}),
                ("POST", f"/api/v1/workspace/{kept}/chat", {"message": "hello", "mode": "chat"}),
                ("POST", "/api/system/generate-api-key", {"name": "nope"}),
                ("DELETE", f"/api/system/api-key/{spare['id']}", None)):
            status, body = send(method, url + path, admin, None if payload is None else json.dumps(payload).encode())
            answer = json.loads(body)  # in the route family's error body: `error`, or `message` (workspaces)
            assert status == 403 and answer.get("error", answer.get("message")).startswith(refused), (method, path, body)
        status, body = send("POST", url + "/api/v1/workspace/new", "sk-nobody", b'{"name": "x"}')
        answer = json.loads(body)
        assert status == 403 and answer.get("error", answer.get("message")).startswith(refused)  # before authentication
        status, body = send("POST", url + "/api/request-token", "", b'{"password": "wrong"}')
        assert status == 401 and "read-only" not in body.decode()  # signing in reads only
        assert _slugs(url, admin) == {kept, doomed}
    log = (tmp_path / "read-only.log").read_text()
    assert f"read-only at position {position}" in log and "Traceback" not in log
    # DIR is a replay whatever the flags: a plain server and the CLI refuse changes there too
    with running_server(served, tmp_path / "plain.log") as server:
        status, body = send("POST", server.url + "/api/v1/workspace/new", admin, b'{"name": "Nope"}')
        answer = json.loads(body)  # the workspace family's error body carries `message`
        assert status == 403 and answer["message"].startswith(READ_ONLY.format(position)), body
    made = served.cli("api-keys", "create", check=False)
    assert made.returncode != 0 and READ_ONLY.format(position) in made.stderr and "Traceback" not in made.stderr
    assert (_events(events_db), hashlib.sha256(events_db.read_bytes()).hexdigest()) == before  # nothing written
    assert backend.raw_events() == source_events  # nor to the source


def test_replay_until_a_time_and_its_errors(backend, tmp_path):
    with client_for(backend, embed_model=False) as client:
        admin = owner_key(client)
        _create_workspace(client, admin, "First")
        at_p = _head(backend)
        time.sleep(0.05)
        _create_workspace(client, admin, "Second")
    head = len(backend.raw_events())

    env = backend.env()
    if backend.database_url:  # a password in DATABASE_URL never reaches replay.json (the test server trusts)
        url = urlparse(backend.database_url)
        env["DATABASE_URL"] = url._replace(netloc=f"{url.username}:hunter2-secret@{url.hostname}:{url.port}").geturl()
    into = tmp_path / "by-time"
    replay = subprocess.run([LEDGERLLM, "replay", "--until", at_p["timestamp"], "--into", str(into)], env=env, check=False,
                            capture_output=True, text=True, timeout=120)
    assert replay.returncode == 0, replay.stderr
    assert replay.stdout == f"{into}\t{at_p['position']}\n" and f"position {at_p['position']}" in replay.stderr
    manifest_text = (into / "replay.json").read_text()
    manifest = json.loads(manifest_text)
    assert manifest["position"] == at_p["position"] and "hunter2" not in manifest_text
    assert manifest["source"] == (str(backend.data_dir.resolve()) if backend.name == "sqlite"
                                  else backend.database_url)
    assert [row[0] for row in _events(into / "events.db")][-1] == at_p["position"]

    beyond = backend.cli("replay", "--until", str(head + 100), "--into", str(tmp_path / "beyond"), check=False)
    assert beyond.returncode != 0 and f"positions run from 1 to {head}" in beyond.stderr
    assert "Traceback" not in beyond.stderr and not (tmp_path / "beyond").exists()
    early = backend.cli("replay", "--until", "2001-01-01T00:00:00Z", "--into", str(tmp_path / "early"), check=False)
    assert early.returncode != 0 and "no event at or before 2001-01-01" in early.stderr
    assert not (tmp_path / "early").exists()
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    refused = backend.cli("replay", "--until", "1", "--into", str(busy), check=False)
    assert refused.returncode != 0 and "is not empty" in refused.stderr and "Traceback" not in refused.stderr
    assert [p.name for p in busy.iterdir()] == ["keep.txt"]
    bad = backend.cli("replay", "--until", "yesterday", "--into", str(tmp_path / "bad"), check=False)
    assert bad.returncode != 0 and "ISO 8601" in bad.stderr

"""`ledgerllm audit verify`, `ledgerllm projections rebuild` and `ledgerllm verify`, run as
subprocesses against real SQLite and PostgreSQL stores filled through the HTTP API, with the
database edited behind the application's back where tampering or drift is the point."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from contextlib import contextmanager
from typing import Any, Iterator

import psycopg

from tests.support.app import Backend, bearer, client_for, owner_key
from tests.support.process import get, running_server, send


@contextmanager
def _db(backend: Backend, file: str = "events.db") -> Iterator[Any]:
    """A raw connection to the store (or a read model's file), committing on exit."""
    if backend.database_url:
        with psycopg.connect(backend.database_url) as conn:
            yield conn
    else:
        conn = sqlite3.connect(backend.data_dir / file)
        try:
            yield conn
            conn.commit()
        finally:
            conn.close()


def _q(backend: Backend, sql: str) -> str:
    return sql.replace("?", "%s") if backend.database_url else sql


def _events_table(backend: Backend) -> tuple[str, str]:
    return ("ledger_events", "notification_id") if backend.database_url else ("stored_events", "rowid")


def _fill(client) -> dict[str, Any]:
    key = owner_key(client)
    admin = bearer(key)
    for name in ("Alpha", "Beta"):
        assert client.post("/api/v1/workspace/new", headers=admin, json={"name": name}).status_code == 200
    assert client.post("/api/v1/workspace/alpha/thread/new", headers=admin, json={"name": "Plans"}).status_code == 200
    doc = client.post("/api/v1/document/raw-text", headers=admin, json={
        "textContent": "Otters hold hands while they sleep so they do not drift apart.",
        "metadata": {"title": "Otter facts"}, "addToWorkspaces": "alpha"})
    assert doc.status_code == 200, doc.text
    return {"key": key}


def _spare_key(backend: Backend) -> None:
    """A key made and revoked by the operator's CLI."""
    backend.cli("api-keys", "create", "--name", "spare")
    listed = json.loads(backend.cli("api-keys", "list", "--json").stdout.splitlines()[-1])
    backend.cli("api-keys", "revoke", str(listed["id"]))


def _verify(backend: Backend, *args: str) -> tuple[int, dict[str, Any]]:
    result = backend.cli("audit", "verify", "--json", *args, check=False)
    assert result.returncode in (0, 1), result.stderr
    return result.returncode, json.loads(result.stdout)


def test_the_digest_chain_names_the_first_altered_inserted_or_removed_row(backend):
    with client_for(backend, embed_model=False) as client:
        key = _fill(client)["key"]
    _spare_key(backend)
    code, report = _verify(backend)
    assert code == 0 and report["intact"] and report["problem_count"] == 0, report
    head = report["head_position"]
    assert report["checked"] == len(backend.raw_events()) and head == backend.raw_events()[-1]["position"]
    anchor = f"{head}:{report['head_digest']}"
    human = backend.cli("audit", "verify")
    assert "chain intact" in human.stdout and f"anchor {anchor}" in human.stdout
    with client_for(backend, embed_model=False) as client:
        checked = client.get("/api/v1/admin/audit/verify", headers=bearer(key), params={"expect": anchor}).json()
    assert checked["intact"] is True and checked["anchor"].startswith(f"{checked['headPosition']}:"), checked

    table, pos = _events_table(backend)
    victim = backend.raw_events()[3]["position"]
    with _db(backend) as conn:  # altered: one byte of one event's state
        original = conn.execute(_q(backend, f"SELECT state FROM {table} WHERE {pos} = ?"), (victim,)).fetchone()[0]
        changed = bytes(original).replace(b'"actor_user_id":1', b'"actor_user_id":2')
        assert changed != bytes(original)
        conn.execute(_q(backend, f"UPDATE {table} SET state = ? WHERE {pos} = ?"), (changed, victim))
    code, report = _verify(backend)
    assert code == 1 and not report["intact"]
    assert report["problems"][0] == {"position": victim, "kind": "altered", "detail": report["problems"][0]["detail"]}
    failed = backend.cli("audit", "verify", check=False)
    assert failed.returncode == 1 and f"TAMPERED: 1 problem(s); the first at position {victim} (altered)" in failed.stdout
    with client_for(backend, embed_model=False) as client:  # the admin API says the same
        checked = client.get("/api/v1/admin/audit/verify", headers=bearer(key))
        assert checked.status_code == 200 and checked.json()["intact"] is False, checked.text
        assert checked.json()["problems"][0]["position"] == victim and checked.json()["problems"][0]["kind"] == "altered"
        assert client.get("/api/v1/admin/audit/verify").status_code == 403
        for broken in ("12:zz", "9" * 20 + ":" + "0" * 64, "１２:" + "0" * 64):  # a position no store holds: was a 500
            bad = client.get("/api/v1/admin/audit/verify", headers=bearer(key), params={"expect": broken})
            assert bad.status_code == 400 and "POSITION:DIGEST" in bad.json()["error"], bad.text
        status = client.get("/api/v1/admin/projections", headers=bearer(key)).json()["projections"]
        assert {p["projection"] for p in status} == {"accounts", "api_keys", "library", "vectors", "chats", "audit_log"}
        assert all(p["head"] == status[0]["head"] >= head and p["behind"] >= 0 for p in status), status
    with _db(backend) as conn:
        conn.execute(_q(backend, f"UPDATE {table} SET state = ? WHERE {pos} = ?"), (bytes(original), victim))
    assert _verify(backend)[0] == 0

    with _db(backend) as conn:  # removed: a row deleted (its link stays)
        row = conn.execute(_q(backend, f"SELECT originator_id, originator_version, topic, state FROM {table} "
                                       f"WHERE {pos} = ?"), (victim,)).fetchone()
        conn.execute(_q(backend, f"DELETE FROM {table} WHERE {pos} = ?"), (victim,))
    code, report = _verify(backend)
    assert code == 1 and report["problems"][0]["position"] == victim and report["problems"][0]["kind"] == "removed"
    with _db(backend) as conn:  # put it back where it was
        conn.execute(_q(backend, f"INSERT INTO {table} ({pos}, originator_id, originator_version, topic, state) "
                                 "VALUES (?, ?, ?, ?, ?)"), (victim, *row))
    assert _verify(backend)[0] == 0

    with _db(backend) as conn:  # inserted: a forged event appended behind the app's back
        oid, _, topic, state = row
        conn.execute(_q(backend, f"INSERT INTO {table} (originator_id, originator_version, topic, state) "
                                 "VALUES (?, ?, ?, ?)"), (oid, 999, topic, state))
        forged = conn.execute(f"SELECT MAX({pos}) FROM {table}").fetchone()[0]
    code, report = _verify(backend)
    assert code == 1 and report["problems"][0] == {
        "position": forged, "kind": "inserted", "detail": report["problems"][0]["detail"]}
    with _db(backend) as conn:
        conn.execute(_q(backend, f"DELETE FROM {table} WHERE {pos} = ?"), (forged,))
    assert _verify(backend)[0] == 0

    with _db(backend) as conn:  # the newest event removed with its link: only an anchor can tell
        conn.execute(_q(backend, f"DELETE FROM {table} WHERE {pos} = ?"), (head,))
        conn.execute(_q(backend, "DELETE FROM ledger_chain WHERE position = ?"), (head,))
    assert _verify(backend)[0] == 0
    code, report = _verify(backend, "--expect", anchor)
    assert code == 1 and report["problems"][0]["kind"] == "truncated" and report["problems"][0]["position"] == head
    bad = backend.cli("audit", "verify", "--expect", "nonsense", check=False)
    assert bad.returncode != 0 and "POSITION:DIGEST" in bad.stderr


def test_verify_passes_then_names_a_drifted_row_and_rebuild_repairs_it(backend):
    with client_for(backend, embed_model=False) as client:
        _fill(client)
    _spare_key(backend)
    result = backend.cli("verify")
    assert "all 6 read models equal their rebuild" in result.stderr, result.stdout + result.stderr
    for name in ("accounts", "api_keys", "library", "vectors", "chats", "audit_log"):
        assert any(line.startswith(name) and " same " in line for line in result.stdout.splitlines()), result.stdout
    # the events decoded by worker processes (a long log gets them by itself): the same answer
    parallel = backend.cli("verify", env={"REBUILD_WORKERS": "2"})
    assert "all 6 read models equal their rebuild" in parallel.stderr, parallel.stdout + parallel.stderr
    assert "chats to compare: 2 worker processes decoding the events" in parallel.stderr
    bad = backend.cli("verify", env={"REBUILD_WORKERS": "-1"}, check=False)
    assert bad.returncode != 0 and "REBUILD_WORKERS must be 0 to 64" in bad.stderr

    with _db(backend, "library.db") as conn:  # a read model edited behind the app's back
        conn.execute("UPDATE workspaces SET name = 'Hacked' WHERE slug = 'beta'")
    drift = backend.cli("verify", "--json", check=False)
    assert drift.returncode == 1, drift.stderr
    reports = {r["projection"]: r for r in map(json.loads, drift.stdout.splitlines())}
    assert [n for n, r in reports.items() if not r["same"]] == ["library"]
    workspaces = next(t for t in reports["library"]["tables"] if t["table"] == "workspaces")
    assert workspaces["differing"] == 2 and "Hacked" in workspaces["only_live"][0]
    assert "Beta" in workspaces["only_rebuilt"][0] and "Hacked" not in workspaces["only_rebuilt"][0]
    human = backend.cli("verify", "library", check=False)
    assert human.returncode == 1 and "library    DIFFERS" in human.stdout and "- live only:" in human.stdout

    (backend.data_dir / ".rebuild-4194305").mkdir()  # a run that died (above any pid_max): swept
    rebuilt = backend.cli("projections", "rebuild", "library")
    assert "library: rebuilt from" in rebuilt.stdout and "events/s" in rebuilt.stdout and "swapped in" in rebuilt.stdout
    assert "rebuilding library" in rebuilt.stderr  # progress
    assert backend.cli("verify").returncode == 0
    with client_for(backend, embed_model=False) as client:
        names = [w["name"] for w in client.get("/api/v1/workspaces", headers=bearer(owner_key(client))).json()["workspaces"]]
    assert sorted(names) == ["Alpha", "Beta"]
    assert not list(backend.data_dir.glob(".rebuild-*")) and not list(backend.data_dir.glob(".verify-*"))

    none = backend.cli("projections", "rebuild", check=False)
    assert none.returncode != 0 and "--all" in none.stderr
    unknown = backend.cli("projections", "rebuild", "nope", check=False)
    assert unknown.returncode != 0 and "no read model named nope" in unknown.stderr


def test_rebuild_while_requests_keep_arriving_loses_nothing(backend, tmp_path):
    with client_for(backend, embed_model=False) as client:
        key = _fill(client)["key"]
    made: list[str] = []
    errors: list[Any] = []
    stop = threading.Event()
    with running_server(backend, tmp_path / "server.log") as server:
        def write() -> None:
            n = 0
            while not stop.is_set():
                n += 1
                status, body = send("POST", f"{server.url}/api/v1/workspace/new", key,
                                    json.dumps({"name": f"Load {n}"}).encode())
                if status != 200:
                    errors.append((status, body))
                    return
                slug = json.loads(body)["workspace"]["slug"]
                status, body = send("POST", f"{server.url}/api/v1/workspace/{slug}/thread/new", key, b"{}")
                if status != 200:
                    errors.append((status, body))
                    return
                made.append(slug)
                time.sleep(0.02)

        writer = threading.Thread(target=write)
        writer.start()
        try:
            time.sleep(0.5)
            result = backend.cli("projections", "rebuild", "--all", check=False)
            time.sleep(0.3)
        finally:
            stop.set()
            writer.join(timeout=300)
        assert result.returncode == 0, result.stderr
        assert result.stdout.count("swapped in at position") == 6, result.stdout
        assert not errors, errors
        assert len(made) >= 5
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            status, body, _ = get(f"{server.url}/api/v1/workspaces", key)
            listed = {w["slug"]: w for w in json.loads(body)["workspaces"]}
            if set(made) <= set(listed):
                break
            time.sleep(0.1)
        assert set(made) | {"alpha", "beta"} == set(listed)
        for slug in made[:3] + made[-3:]:
            status, body, _ = get(f"{server.url}/api/v1/workspace/{slug}/threads", key)
            assert status == 200 and len(json.loads(body)["threads"]) == 1, body
        # the server's own search still works after the vectors swap (its faiss index restarted)
        status, body = send("POST", f"{server.url}/api/v1/workspace/alpha/vector-search", key,
                            json.dumps({"query": "do otters sleep holding hands?"}).encode())
        assert status == 200 and "Otters" in json.loads(body)["results"][0]["text"], body
    assert backend.cli("verify").returncode == 0

"""`ledgerllm backup`, `ledgerllm restore` and `ledgerllm events import`, run as subprocesses
against stores filled through the HTTP API, on both backends; plus a backup taken while a real
server process keeps writing. A restored or imported store must answer HTTP reads as the
original did."""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
import threading
import time
import uuid
from pathlib import Path

import psycopg
import pytest

from tests.support.app import LEDGERLLM, Backend, bearer, client_for, owner_key
from tests.support.process import running_server, send

BEAVERS = "Beavers build dams from branches and mud to make calm, deep ponds for their lodges."
OWLS = "Owls hunt at night; their soft feathers make their flight almost silent."
PROVIDER_SECRET = "sk-provider-secret-for-backup-4242"
READ_MODELS = {"accounts", "api_keys", "library", "vectors", "chats", "audit_log"}


def _fill(client) -> str:
    """Two workspaces, an embedded and a loose document, a revoked key and a provider secret."""
    key = owner_key(client)
    admin = bearer(key)
    for name in ("Alpha", "Beta"):
        assert client.post("/api/v1/workspace/new", headers=admin, json={"name": name}).status_code == 200
    for text, title, where in ((BEAVERS, "Beavers", "alpha"), (OWLS, "Owls", "")):
        response = client.post("/api/v1/document/raw-text", headers=admin, json={
            "textContent": text, "metadata": {"title": title}, "addToWorkspaces": where})
        assert response.status_code == 200 and response.json()["failedToEmbed"] == [], response.text
    spare = client.post("/api/system/generate-api-key", headers=admin, json={"name": "spare"}).json()["apiKey"]
    assert client.delete(f"/api/system/api-key/{spare['id']}", headers=admin).status_code == 200
    assert client.post("/api/v1/system/update-env", headers=admin, json={
        "LLMProvider": "generic-openai", "GenericOpenAiKey": PROVIDER_SECRET}).status_code == 200
    return key


def _reads(client, key: str) -> dict:
    admin = bearer(key)

    def ok(response):
        assert response.status_code == 200, response.text
        return response.json()

    return {
        "workspaces": ok(client.get("/api/v1/workspaces", headers=admin)),
        "alpha": ok(client.get("/api/v1/workspace/alpha", headers=admin)),
        "documents": ok(client.get("/api/v1/documents", headers=admin)),
        "keys": ok(client.get("/api/system/api-keys", headers=admin, params={"includeRevoked": "true"})),
        "system": ok(client.get("/api/v1/system", headers=admin)),
        "search": ok(client.post("/api/v1/workspace/alpha/vector-search", headers=admin,
                                 json={"query": "beaver dams", "topN": 3})),
        "audit": ok(client.get("/api/v1/admin/audit", headers=admin, params={"limit": 1000})),
    }


def _fresh(backend: Backend, data_dir: Path, request: pytest.FixtureRequest) -> Backend:
    """An empty store of the same kind: a new DATA_DIR, and a new database when scaled out."""
    if backend.name == "sqlite":
        return Backend("sqlite", data_dir)
    request.getfixturevalue("redis_server").flushall()  # no principal cached from the original store
    database = request.getfixturevalue("postgres_server").create_database(f"t_{uuid.uuid4().hex[:12]}")
    return Backend("postgres", data_dir, database, backend.redis_url)


def _export(backend: Backend) -> list[dict]:
    return [json.loads(line) for line in backend.cli("events", "export").stdout.splitlines()]


def _manifest(directory: Path) -> dict:
    return json.loads((directory / "manifest.json").read_text())


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_backup_then_restore_answers_the_same(backend, tmp_path, request):
    with client_for(backend) as client:
        key = _fill(client)
        before = _reads(client, key)
    exported = _export(backend)
    backup = tmp_path / "backup"
    made = backend.cli("backup", str(backup))
    assert made.stdout.startswith(f"backed up {backend.name} store to {backup}") and "faiss" in made.stderr

    manifest = _manifest(backup)
    head = exported[-1]["position"]
    assert manifest["format"] == "ledgerllm-backup" and manifest["backend"] == backend.name
    assert manifest["events_head"] == head and f"events head {head}" in made.stdout
    assert READ_MODELS <= set(manifest["read_models"]) and all(0 <= p <= head for p in manifest["read_models"].values())
    paths = {f["path"]: f for f in manifest["files"]}
    main = ({"events.db", "webhook_deliveries.db", "content_keys.db", *(f"{name}.db" for name in READ_MODELS)}
            if backend.name == "sqlite" else {"postgres.dump"})  # webhook checkpoints; the data keys that open sealed content
    blobs = {str(p.relative_to(backend.data_dir)) for p in (backend.data_dir / "blobs").rglob("*") if p.is_file()}
    if backend.database_url:  # the blobs are rows in PostgreSQL, so in postgres.dump
        with psycopg.connect(backend.database_url) as conn:
            assert conn.execute("SELECT count(*) FROM ledger_blobs").fetchone()[0] >= 2 and blobs == set()
    else:
        assert len(blobs) >= 2
    # master.key: the master key of the data keys (with PostgreSQL it is a row in the dump)
    secret_files = {"jwt-secret", "secrets.json"} | ({"master.key"} if backend.name == "sqlite" else set())
    assert set(paths) == main | blobs | secret_files  # no faiss/
    for rel, entry in paths.items():
        assert (backup / rel).stat().st_size == entry["size"]
    assert _mode(backup) == 0o700 and _mode(backup / "jwt-secret") == _mode(backup / "secrets.json") == 0o600

    restored = _fresh(backend, tmp_path / "restored", request)
    done = restored.cli("restore", str(backup))
    assert f"events head {head}" in done.stdout and "ledgerllm audit verify" in done.stderr
    for name in sorted(secret_files):
        assert (restored.data_dir / name).read_bytes() == (backend.data_dir / name).read_bytes()
        assert _mode(restored.data_dir / name) == 0o600
    assert not (restored.data_dir / "faiss").exists()
    assert _export(restored) == exported
    with client_for(restored) as client:
        after = _reads(client, key)
        assert client.get("/api/v1/auth", headers=bearer(key)).status_code == 200
    assert len(before["workspaces"]["workspaces"]) == 2 and before["search"]["results"]
    assert after == before and after["system"]["settings"]["GenericOpenAiKey"] is True


def test_backup_while_a_server_keeps_writing(sqlite_backend, tmp_path):
    backend = sqlite_backend
    with client_for(backend, embed_model=False) as client:
        key = owner_key(client)
    backup, failures, created = tmp_path / "backup", [], []
    with running_server(backend, tmp_path / "server.log") as server:
        stop = threading.Event()

        def write() -> None:
            while not stop.is_set():
                body = json.dumps({"name": f"busy {len(created)}"}).encode()
                status, answer = send("POST", server.url + "/api/v1/workspace/new", key, body)
                (created if status == 200 else failures).append(answer)

        writer = threading.Thread(target=write)
        writer.start()
        try:
            _wait(lambda: len(created) >= 5)
            during = len(created)
            backend.cli("backup", str(backup))
            after = len(created)
            _wait(lambda: len(created) >= after + 5)
        finally:
            stop.set()
            writer.join(timeout=30)
        exported = _export(backend)
    assert failures == []

    head = _manifest(backup)["events_head"]
    assert 0 < head < len(exported)  # the server went on writing after the snapshot
    restored = Backend("sqlite", tmp_path / "restored")
    restored.cli("restore", str(backup))
    status = [json.loads(line) for line in restored.cli("projections", "status", "--json").stdout.splitlines()]
    assert {row["head"] for row in status} == {head} and all(row["position"] <= head for row in status)
    assert _export(restored) == exported[:head]
    expected = sorted(r["payload"]["name"] for r in exported[:head] if r["type"] == "Workspace.Created")
    with client_for(restored, embed_model=False) as client:
        listed = client.get("/api/v1/workspaces", headers=bearer(key)).json()["workspaces"]
    assert sorted(w["name"] for w in listed) == expected
    assert during <= len(expected) <= after + 1  # all answered before the backup; none sent after it


def _wait(condition, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _workspaces(backend: Backend, key: str) -> list[str]:
    with client_for(backend, embed_model=False) as client:
        return sorted(w["name"] for w in client.get("/api/v1/workspaces", headers=bearer(key)).json()["workspaces"])


def test_damaged_backups_and_occupied_targets_are_refused(backend, tmp_path, request):
    with client_for(backend, embed_model=False) as client:
        key = owner_key(client)
        client.post("/api/v1/workspace/new", headers=bearer(key), json={"name": "Kept"})
        client.post("/api/v1/document/raw-text", headers=bearer(key), json={"textContent": OWLS,
                                                                             "metadata": {"title": "Owls"}})
    backup = tmp_path / "backup"
    backend.cli("backup", str(backup))
    again = backend.cli("backup", str(backup), check=False)
    assert again.returncode != 0 and "not empty" in again.stderr and "Traceback" not in again.stderr

    main = "events.db" if backend.name == "sqlite" else "postgres.dump"
    blobs = [f["path"] for f in _manifest(backup)["files"] if f["kind"] == "blob"][:1]  # none: in postgres.dump
    for n, damaged_file in enumerate((main, *blobs, "jwt-secret")):
        damaged = tmp_path / f"damaged-{n}"
        shutil.copytree(backup, damaged)
        data = bytearray((damaged / damaged_file).read_bytes())
        data[len(data) // 2] ^= 0xFF
        (damaged / damaged_file).write_bytes(bytes(data))
        target = _fresh(backend, tmp_path / f"target-{n}", request)
        refused = target.cli("restore", str(damaged), check=False)
        assert refused.returncode != 0 and "damaged" in refused.stderr and damaged_file in refused.stderr
        assert not target.data_dir.exists()
        assert target.cli("events", "export").stdout == ""  # nothing restored into the database either
    (tmp_path / "damaged-0" / "manifest.json").unlink()
    unfinished = _fresh(backend, tmp_path / "target-x", request).cli("restore", str(tmp_path / "damaged-0"),
                                                                     check=False)
    assert unfinished.returncode != 0 and "no manifest.json" in unfinished.stderr

    with client_for(backend, embed_model=False) as client:  # a change after the backup
        client.post("/api/v1/workspace/new", headers=bearer(key), json={"name": "Later"})
    occupied = backend.cli("restore", str(backup), check=False)
    assert occupied.returncode != 0 and "--force" in occupied.stderr and "Traceback" not in occupied.stderr
    assert _workspaces(backend, key) == ["Kept", "Later"]

    forced = backend.cli("restore", str(backup), "--force")
    [aside] = tmp_path.glob("data.before-restore-*")
    assert str(aside) in forced.stderr and (aside / "jwt-secret").exists()
    assert (aside / "blobs").is_dir() or backend.database_url
    assert _workspaces(backend, key) == ["Kept"]
    if backend.name == "sqlite":
        assert _workspaces(Backend("sqlite", aside), key) == ["Kept", "Later"]  # the old store, kept whole
    else:
        listing = subprocess.run(["pg_restore", "--list", str(aside / "postgres.dump")], capture_output=True,
                                 text=True, check=True).stdout
        assert "ledger_events" in listing and "ledger_chain" in listing


def test_events_import_rebuilds_the_same_store(backend, tmp_path, request):
    with client_for(backend) as client:
        key = _fill(client)
        before = _reads(client, key)
    exported = backend.cli("events", "export").stdout
    source = tmp_path / "events.jsonl"
    source.write_text(exported)

    target = _fresh(backend, tmp_path / "imported", request)
    target.data_dir.mkdir()
    if backend.database_url:  # documents' bytes travel beside, as files
        backend.cli("blobs", "export", str(target.data_dir / "blobs"))
    else:
        shutil.copytree(backend.data_dir / "blobs", target.data_dir / "blobs")
    shutil.copy2(backend.data_dir / "secrets.json", target.data_dir / "secrets.json")
    done = target.cli("events", "import", str(source))
    lines = exported.splitlines()
    assert done.stdout.startswith(f"imported {len(lines)} events") and "warning" not in done.stderr
    again = target.cli("events", "import", str(source), check=False)
    assert again.returncode != 0 and "not empty" in again.stderr

    def unpositioned(rows: list[dict]) -> list[dict]:
        return [{k: v for k, v in row.items() if k != "position"} for row in rows]

    imported = _export(target)
    assert unpositioned(imported) == unpositioned([json.loads(line) for line in lines])
    if backend.name == "sqlite":
        assert imported == [json.loads(line) for line in lines]
    assert [(e["topic"], e["state"]) for e in target.raw_events()] == [
        (e["topic"], e["state"]) for e in backend.raw_events()]  # originator_topic too
    with client_for(target) as client:
        after = _reads(client, key)
    checked = target.cli("verify")  # every read model of the imported store equals its rebuild
    assert "all 6 read models equal their rebuild" in checked.stderr, checked.stdout
    assert "chain intact" in target.cli("audit", "verify").stdout
    if backend.name == "postgres":  # audit positions follow the store's positions
        for page in (before, after):
            for row in page["audit"]["events"]:
                row.pop("position")
    assert after == before


def test_events_import_stops_at_a_bad_line(backend, tmp_path, request):
    with client_for(backend, embed_model=False) as client:
        key = owner_key(client)
        client.post("/api/v1/workspace/new", headers=bearer(key), json={"name": "Loop"})
        client.post("/api/v1/workspace/loop/update", headers=bearer(key), json={"name": "Looped"})
    good = _export(backend)
    update = next(r for r in good if r["type"] == "Workspace.Updated")
    # 1,100 more valid updates of that workspace: the import runs in batches of 1,000
    more = [{**update, "version": update["version"] + n} for n in range(1, 1101)]

    def attempt(rows: list, name: str) -> subprocess.CompletedProcess:
        path = tmp_path / f"{name}.jsonl"
        path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
        target = _fresh(backend, tmp_path / name, request)
        result = target.cli("events", "import", str(path), check=False)
        result.stored = len(target.raw_events())
        return result

    created = next(i for i, r in enumerate(good) if r["type"] == "Workspace.Created")
    follows = next(i for i, r in enumerate(good) if i > created and r["aggregate_id"] == good[created]["aggregate_id"])
    cases = {
        "not-json": (good[:3] + ["{oops"] + good[3:], 4, "not JSON"),
        "gap": (good[:created] + good[created + 1:], follows, "version"),
        "foreign": (good[:1] + [{**good[1], "topic": "os:system"}] + good[2:], 2, "not a ledgerllm event"),
        "unknown-field": (good[:1] + [{**good[1], "payload": {**good[1]["payload"], "extra": 1}}], 2, "extra"),
    }
    for name, (rows, line, message) in cases.items():
        result = attempt(rows, name)
        assert result.returncode != 0 and f"line {line}:" in result.stderr and message in result.stderr, name
        assert "Nothing was imported" in result.stderr and result.stored == 0, name

    late = attempt(good + more[:1050] + [{**more[1050], "version": 1}], "late")
    bad_line = len(good) + 1051
    assert late.returncode != 0 and f"line {bad_line}:" in late.stderr and late.stored == 1000
    assert "The 1000 events before its batch were imported" in late.stderr

    target = _fresh(backend, tmp_path / "stdin", request)
    piped = subprocess.run([LEDGERLLM, "events", "import", "-"], input="\n".join(map(json.dumps, good + more)),
                           env=target.env(), capture_output=True, text=True, timeout=120, check=False)
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout.startswith(f"imported {len(good) + len(more)} events")
    assert len(target.raw_events()) == len(good) + len(more)


def test_pg_dump_gets_the_password_from_the_environment_only(pg_backend, tmp_path):
    password = "s3cret-backup-pw"
    backend = Backend("postgres", pg_backend.data_dir, pg_backend.database_url.replace(
        "postgres@", f"postgres:{password}@"), pg_backend.redis_url)
    backend.cli("api-keys", "create")  # the owner, a key: something to back up
    shims, seen = tmp_path / "shims", tmp_path / "seen"
    shims.mkdir()
    seen.mkdir()
    real = shutil.which("pg_dump")
    (shims / "pg_dump").write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {seen}/argv\n'
                                   f'printf "%s" "$PGPASSWORD" > {seen}/password\nexec {real} "$@"\n')
    (shims / "pg_dump").chmod(0o755)

    def backup(path: str, target: Path) -> subprocess.CompletedProcess:
        return subprocess.run([LEDGERLLM, "backup", str(target)], env=backend.env(PATH=path), capture_output=True,
                              text=True, timeout=120, check=False)

    made = backup(f"{shims}:{backend.env()['PATH']}", tmp_path / "backup")
    assert made.returncode == 0, made.stderr
    assert (seen / "password").read_text() == password
    argv = (seen / "argv").read_text()
    assert "--format=custom" in argv and password not in argv
    assert password not in made.stdout + made.stderr + (tmp_path / "backup" / "manifest.json").read_text()

    missing = backup(str(tmp_path / "seen"), tmp_path / "never")  # no pg_dump on PATH
    assert missing.returncode != 0 and "pg_dump is not on PATH" in missing.stderr
    assert "postgresql-client" in missing.stderr and not (tmp_path / "never").exists()

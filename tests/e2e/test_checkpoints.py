"""Signed checkpoints, through the CLI as an operator runs it on real SQLite and PostgreSQL
stores: `audit checkpoint` signs the chain's head, `audit verify --checkpoint` proves today's
chain extends it, so the newest events removed with their links are caught without an anchor
stored anywhere; a changed note, another key or a missing file are refused with the reason."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
from pathlib import Path

import psycopg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from infrastructure.checkpoints import verifier_key
from tests.support.app import Backend, bearer, client_for, owner_key


def _fill(backend: Backend, names: tuple[str, ...]) -> None:
    with client_for(backend, embed_model=False) as client:
        admin = bearer(owner_key(client))
        for name in names:
            assert client.post("/api/v1/workspace/new", headers=admin, json={"name": name}).status_code == 200


def _verify(backend: Backend, *args: str) -> tuple[int, dict, str]:
    result = backend.cli("audit", "verify", "--json", *args, check=False)
    assert result.returncode in (0, 1), result.stderr
    return result.returncode, (json.loads(result.stdout) if result.stdout.strip() else {}), result.stderr


def _remove_newest(backend: Backend) -> int:
    """Delete the newest event and its chain link behind the application's back."""
    if backend.database_url:
        with psycopg.connect(backend.database_url) as conn:
            head = conn.execute("SELECT MAX(notification_id) FROM ledger_events").fetchone()[0]
            conn.execute("DELETE FROM ledger_events WHERE notification_id = %s", (head,))
            conn.execute("DELETE FROM ledger_chain WHERE position = %s", (head,))
        return head
    conn = sqlite3.connect(backend.data_dir / "events.db")
    try:
        head = conn.execute("SELECT MAX(rowid) FROM stored_events").fetchone()[0]
        conn.execute("DELETE FROM stored_events WHERE rowid = ?", (head,))
        conn.execute("DELETE FROM ledger_chain WHERE position = ?", (head,))
        conn.commit()
    finally:
        conn.close()
    return head


def test_a_checkpoint_catches_the_newest_events_removed(backend, tmp_path: Path):
    _fill(backend, ("Alpha",))
    early = tmp_path / "early.checkpoint"
    backend.cli("audit", "checkpoint", "--out", str(early))
    _fill(backend, ("Beta", "Gamma"))
    late = tmp_path / "late.checkpoint"
    made = backend.cli("audit", "checkpoint", "--out", str(late))
    assert "written to" in made.stderr
    key_file = backend.data_dir / "checkpoint.key"
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    assert key_file.read_text().strip() not in early.read_text() + late.read_text()

    code, report, _ = _verify(backend, "--checkpoint", str(early), str(late))
    assert code == 0 and report["intact"], report
    head = report["head_position"]
    assert [c["position"] for c in report["checkpoints"]] == [int(early.read_text().splitlines()[1]), head]

    # another machine checks with only the verifier key
    public = backend.cli("audit", "public-key").stdout.strip()
    assert public.startswith("ledgerllm+")
    assert _verify(backend, "--checkpoint", str(late), "--key", public)[0] == 0

    removed = _remove_newest(backend)
    assert removed == head
    assert _verify(backend)[0] == 0  # the chain alone cannot tell
    assert _verify(backend, "--checkpoint", str(early))[0] == 0  # still extended
    code, report, _ = _verify(backend, "--checkpoint", str(early), str(late))
    assert code == 1 and report["problems"][0]["kind"] == "truncated" and report["problems"][0]["position"] == head
    human = backend.cli("audit", "verify", "--checkpoint", str(late), check=False)
    assert human.returncode == 1 and "TAMPERED" in human.stdout and "truncated" in human.stdout

    # a checkpoint is refused before the walk when it cannot be trusted
    lines = early.read_text().split("\n")
    lines[1] = str(int(lines[1]) + 1)
    forged = tmp_path / "forged.checkpoint"
    forged.write_text("\n".join(lines))
    refused = backend.cli("audit", "verify", "--checkpoint", str(forged), check=False)
    assert refused.returncode == 1 and "signature is not valid" in refused.stderr, refused.stderr
    stranger = verifier_key("ledgerllm", Ed25519PrivateKey.generate().public_key())
    refused = backend.cli("audit", "verify", "--checkpoint", str(early), "--key", stranger, check=False)
    assert refused.returncode == 1 and "no signature by this key" in refused.stderr
    missing = backend.cli("audit", "verify", "--checkpoint", str(tmp_path / "nope"), check=False)
    assert missing.returncode == 1 and "does not exist" in missing.stderr
    garbled = backend.cli("audit", "verify", "--checkpoint", str(early), "--key", "not-a-key", check=False)
    assert garbled.returncode == 1 and "ORIGIN+KEYID+BASE64" in garbled.stderr


def test_a_tampered_chain_is_never_signed(backend, tmp_path: Path):
    _fill(backend, ("Alpha", "Beta"))
    table, pos = ("ledger_events", "notification_id") if backend.database_url else ("stored_events", "rowid")
    victim = 2
    if backend.database_url:
        with psycopg.connect(backend.database_url) as conn:
            conn.execute(f"UPDATE {table} SET state = state || '\\x20'::bytea WHERE {pos} = %s", (victim,))
    else:
        conn = sqlite3.connect(backend.data_dir / "events.db")
        conn.execute(f"UPDATE {table} SET state = state || x'20' WHERE {pos} = ?", (victim,))
        conn.commit()
        conn.close()
    out = tmp_path / "c"
    refused = backend.cli("audit", "checkpoint", "--out", str(out), check=False)
    assert refused.returncode == 1 and "not intact" in refused.stderr and not out.exists()

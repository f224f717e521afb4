"""`ledgerllm blobs migrate` as an operator runs it: the blob files an older version kept under
DATA_DIR/blobs go into PostgreSQL, checked against their digests; a second run is a no-op."""

from __future__ import annotations

import hashlib
import json
import os
import uuid

import psycopg

from infrastructure.blobs import BlobStore
from infrastructure.pg_blobs import CHUNK, PgBlobStore
from tests.support.app import Backend


def stored_digests(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        exists = conn.execute("SELECT to_regclass('ledger_blobs')").fetchone()[0]
        return {d for (d,) in conn.execute("SELECT digest FROM ledger_blobs")} if exists else set()


def test_migrate_moves_file_blobs_in_and_a_second_run_is_a_no_op(pg_backend: Backend) -> None:
    files = BlobStore(pg_backend.data_dir / "blobs")
    contents = [b"original upload", b"extracted text", os.urandom(2 * CHUNK + 7)]
    digests = {files.put(data): data for data in contents}
    (files.path(next(iter(digests))).parent / ".stray.tmp").write_bytes(b"a crashed write's leftover")
    damaged = hashlib.sha256(b"what it should hold").hexdigest()
    files.path(damaged).parent.mkdir(parents=True, exist_ok=True)
    files.path(damaged).write_bytes(b"bit rot")

    first = pg_backend.cli("blobs", "migrate", "--json", check=False)
    assert first.returncode == 1, first.stderr  # the damaged file is reported
    summary = json.loads(first.stdout)
    assert summary == {"files": 4, "copied": 3, "copied_mib": 2.0, "already_stored": 0, "damaged": [damaged]}
    assert damaged in first.stderr and "warning" in first.stderr
    assert "3 copied" in first.stderr and "0 already in PostgreSQL" in first.stderr
    assert stored_digests(pg_backend.database_url) == set(digests)
    store = PgBlobStore(pg_backend.database_url)
    assert all(store.get(d) == data for d, data in digests.items())
    store.close()

    files.path(damaged).unlink()  # the operator restored or dropped it
    second = pg_backend.cli("blobs", "migrate", "--json")
    assert json.loads(second.stdout) == {"files": 3, "copied": 0, "copied_mib": 0.0, "already_stored": 3,
                                         "damaged": []}
    assert stored_digests(pg_backend.database_url) == set(digests)
    assert all(files.get(d) == data for d, data in digests.items())  # the files are left in place


def test_migrate_without_database_url_says_what_to_set(sqlite_backend: Backend) -> None:
    BlobStore(sqlite_backend.data_dir / "blobs").put(b"kept as a file")
    result = sqlite_backend.cli("blobs", "migrate", check=False)
    assert result.returncode == 1 and "DATABASE_URL is not set" in result.stderr and "Traceback" not in result.stderr


def test_migrate_with_no_blob_files_is_a_quiet_no_op(pg_backend: Backend) -> None:
    result = pg_backend.cli("blobs", "migrate")
    assert "0 copied" in result.stderr and result.stdout == ""


def test_export_writes_every_blob_as_files_and_migrate_takes_them_into_another_database(
        pg_backend: Backend, postgres_server, tmp_path) -> None:
    store = PgBlobStore(pg_backend.database_url)
    contents = [b"first", os.urandom(CHUNK + 3)]
    digests = {store.put(data): data for data in contents}
    store.close()
    out = tmp_path / "exported-blobs"
    done = pg_backend.cli("blobs", "export", str(out))
    assert "2 written" in done.stderr
    files = BlobStore(out)
    assert all(files.get(d) == data for d, data in digests.items())
    assert "0 written, 2 already" in pg_backend.cli("blobs", "export", str(out)).stderr

    other = Backend("postgres", tmp_path / "other", postgres_server.create_database(f"t_{uuid.uuid4().hex[:12]}"),
                    pg_backend.redis_url)
    (tmp_path / "other").mkdir()
    out.rename(tmp_path / "other" / "blobs")
    assert json.loads(other.cli("blobs", "migrate", "--json").stdout)["copied"] == 2
    assert stored_digests(other.database_url) == set(digests)

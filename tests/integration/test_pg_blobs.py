"""The PostgreSQL blob store on a real server: chunked across the 1 MiB boundary, deduplicated,
safe under concurrent puts of the same bytes, whole-or-nothing, refusing bad digests, and
healing from a machine's old file store."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import psycopg
import pytest

from infrastructure.blobs import BlobNotFound, BlobStore
from infrastructure.pg_blobs import CHUNK, BlobDamaged, DigestMismatch, PgBlobStore, iter_file_blobs


@pytest.fixture
def store(pg_url: str):
    blobs = PgBlobStore(pg_url)
    yield blobs
    blobs.close()


def rows(url: str, sql: str, *params: object) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql, params).fetchall()


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK + CHUNK // 2])
def test_blob_round_trips_in_chunks_of_at_most_one_mib(store: PgBlobStore, pg_url: str, size: int) -> None:
    data = os.urandom(size)
    digest = store.put(data)
    assert digest == hashlib.sha256(data).hexdigest()
    assert store.get(digest) == data and store.exists(digest)
    assert b"".join(store.chunks(digest)) == data
    sizes = [n for (n,) in rows(pg_url, "SELECT length(data) FROM ledger_blob_chunks WHERE digest = %s ORDER BY seq",
                                digest)]
    assert sizes == [CHUNK] * (size // CHUNK) + ([size % CHUNK] if size % CHUNK else [])
    assert rows(pg_url, "SELECT size, chunks FROM ledger_blobs WHERE digest = %s", digest) == [(size, len(sizes))]


def test_the_same_bytes_are_stored_once(store: PgBlobStore, pg_url: str) -> None:
    data = os.urandom(CHUNK + 10)
    assert store.put(data) == store.put(data) == PgBlobStore(pg_url).put(data)
    assert rows(pg_url, "SELECT count(*) FROM ledger_blobs") == [(1,)]
    assert rows(pg_url, "SELECT count(*) FROM ledger_blob_chunks") == [(2,)]


def test_concurrent_puts_of_the_same_bytes_from_separate_connections(pg_url: str) -> None:
    data = os.urandom(3 * CHUNK)
    stores = [PgBlobStore(pg_url) for _ in range(6)]
    digests: list[str] = []
    errors: list[BaseException] = []
    start = threading.Barrier(len(stores))

    def put(blobs: PgBlobStore) -> None:
        try:
            start.wait()
            digests.append(blobs.put(data))
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=put, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and set(digests) == {hashlib.sha256(data).hexdigest()} and len(digests) == 6
    assert rows(pg_url, "SELECT count(*) FROM ledger_blobs") == [(1,)]
    assert rows(pg_url, "SELECT count(*) FROM ledger_blob_chunks") == [(3,)]
    assert stores[0].get(digests[0]) == data
    for s in stores:
        s.close()


def test_missing_digest_is_blob_not_found(store: PgBlobStore) -> None:
    with pytest.raises(BlobNotFound):
        store.get("0" * 64)
    assert not store.exists("0" * 64)


@pytest.mark.parametrize("digest", ["../../etc/passwd", "A" * 64, "0" * 63, "0" * 65, "", "0" * 63 + "\x00"])
def test_bad_digest_is_refused(store: PgBlobStore, digest: str) -> None:
    for call in (store.get, store.exists):
        with pytest.raises(ValueError):
            call(digest)


def test_a_blob_being_written_is_not_seen_until_complete(store: PgBlobStore, pg_url: str) -> None:
    """Another writer's chunks, not yet committed with their head row, are no blob: a reader
    gets BlobNotFound, never part of it; a put cut off mid-way (rolled back) leaves nothing."""
    store.put(b"creates the tables")
    data = os.urandom(2 * CHUNK)
    digest = hashlib.sha256(data).hexdigest()
    with psycopg.connect(pg_url) as writer:
        writer.execute("INSERT INTO ledger_blob_chunks VALUES (%s, 0, %s)", (digest, data[:CHUNK]))
        with pytest.raises(BlobNotFound):
            store.get(digest)
        writer.rollback()
    assert rows(pg_url, "SELECT count(*) FROM ledger_blob_chunks WHERE digest = %s", digest) == [(0,)]
    assert store.put(data) == digest and store.get(digest) == data


def test_altered_chunk_is_reported_not_returned(store: PgBlobStore, pg_url: str) -> None:
    digest = store.put(b"original bytes")
    with psycopg.connect(pg_url) as conn:
        conn.execute("UPDATE ledger_blob_chunks SET data = %s WHERE digest = %s", (b"altered bytes!", digest))
    with pytest.raises(BlobDamaged):
        store.get(digest)


def test_a_file_is_streamed_in_under_its_digest_or_refused(store: PgBlobStore, pg_url: str, tmp_path: Path) -> None:
    files = BlobStore(tmp_path / "blobs")
    good = files.put(os.urandom(CHUNK + 5))
    assert store.put_file(files.path(good), good) is True
    assert store.get(good) == files.get(good)
    assert store.put_file(files.path(good), good) is False  # already there
    wrong = "f" * 64
    with pytest.raises(DigestMismatch):
        store.put_file(files.path(good), wrong)
    assert not store.exists(wrong) and rows(pg_url, "SELECT count(*) FROM ledger_blob_chunks WHERE digest = %s",
                                            wrong) == [(0,)]


def test_a_blob_only_in_the_old_file_store_is_copied_in_when_read(pg_url: str, tmp_path: Path) -> None:
    files = BlobStore(tmp_path / "blobs")
    digest = files.put(b"uploaded before the upgrade")
    store = PgBlobStore(pg_url, fallback=files)
    assert store.get(digest) == b"uploaded before the upgrade"
    assert PgBlobStore(pg_url).get(digest) == b"uploaded before the upgrade"  # another machine reaches it now
    store.close()


def test_listing_a_file_store_skips_what_is_not_a_blob(tmp_path: Path) -> None:
    files = BlobStore(tmp_path / "blobs")
    digest = files.put(b"one")
    (files.path(digest).parent / ".tmp-abc").write_bytes(b"stray")
    (tmp_path / "blobs" / "README").write_text("not a blob")
    assert [d for d, _ in iter_file_blobs(tmp_path / "blobs")] == [digest]
    assert list(iter_file_blobs(tmp_path / "nothing")) == []


def test_a_broken_pooled_connection_is_replaced(store: PgBlobStore, pg_url: str) -> None:
    digest = store.put(b"before")
    with psycopg.connect(pg_url, autocommit=True) as admin:  # what a PostgreSQL restart does to it
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                      "WHERE datname = current_database() AND pid <> pg_backend_pid()")
    assert store.get(digest) == b"before"
    assert store.get(store.put(b"after")) == b"after"

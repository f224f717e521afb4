"""Document blobs in PostgreSQL (when DATABASE_URL is set), so every process on every machine
reaches the bytes and text a shared read model (vectors) re-reads; DATA_DIR holds no blob.

Content-addressed like the file store (infrastructure/blobs.py): a blob's address is the
sha256 of its bytes, stored once whatever the number of puts. Two tables beside the events
(the database's current schema, like `ledger_events`):

- `ledger_blob_chunks (digest, seq, data)`: the bytes in chunks of `CHUNK` (1 MiB), so a large
  blob travels as many modest rows, streamed in and out, never as one giant bytea;
- `ledger_blobs (digest, size, chunks)`: one row per complete blob, written in the same
  transaction as its chunks. A reader looks for this row first, so a blob is seen whole or
  not at all (a crash mid-put leaves nothing visible and rolls its chunks back).

Concurrent puts of the same bytes are idempotent (`ON CONFLICT DO NOTHING`; the second
writer waits on the first's rows, then adds nothing). Reads check the size and the digest.

`fallback`: the machine's old file store. A blob missing here but found there (a store not
yet moved in by `ledgerllm blobs migrate`) is copied in when first read, so it then reaches
every process.

Connections: of its own, beside the process's pool (infrastructure/pg_pool.py), at most
`max_open` (2) at once and `max_idle` (1) kept idle, opened on demand, checked before use and
retried once on a fresh connection when one broke (a PostgreSQL restart); no threads.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

from infrastructure.blobs import BlobNotFound, BlobStore, check_digest
from infrastructure.settings import Settings

CHUNK = 1 << 20  # bytes per chunk row
MAX_OPEN = 2  # connections a process's blob store has open at most (1 kept idle)
OPEN_WAIT_SECONDS = 30.0
HEADS, CHUNKS = "ledger_blobs", "ledger_blob_chunks"

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {CHUNKS} (
    digest text NOT NULL, seq integer NOT NULL, data bytea NOT NULL, PRIMARY KEY (digest, seq));
CREATE TABLE IF NOT EXISTS {HEADS} (
    digest text PRIMARY KEY CHECK (digest ~ '^[0-9a-f]{{64}}$'),
    size bigint NOT NULL, chunks integer NOT NULL, stored_at timestamptz NOT NULL DEFAULT now());
"""


class BlobDamaged(RuntimeError):
    """A stored blob does not hold the bytes its digest names (size or sha256 differ)."""


class DigestMismatch(ValueError):
    """Bytes offered under a digest that is not theirs; nothing was stored."""


class PgBlobStore:
    def __init__(self, database_url: str, *, fallback: BlobStore | None = None, chunk_size: int = CHUNK,
                 max_idle: int = 1, max_open: int = MAX_OPEN, application_name: str = "ledgerllm-blobs") -> None:
        self.database_url, self.fallback, self.chunk_size, self.max_idle = database_url, fallback, chunk_size, max_idle
        self.application_name = application_name
        # Connections open at once: a blob read inside a view's transaction (the vectors
        # projection re-reads text) must never wait for the shared pool, so blobs keep their own.
        self._open = threading.BoundedSemaphore(max_open)
        self._idle: list[psycopg.Connection[Any]] = []
        self._lock = threading.Lock()
        self._ready = False

    # --- the Blobs port ---------------------------------------------------------------
    def put(self, data: bytes) -> str:
        """Store `data`; return its sha256 hex digest. Idempotent, safe beside other writers."""
        digest = hashlib.sha256(data).hexdigest()
        view = memoryview(data)
        self._put(digest, lambda: (view[i:i + self.chunk_size] for i in range(0, len(view), self.chunk_size)))
        return digest

    def get(self, digest: str) -> bytes:
        """The blob's bytes (read chunk by chunk, checked against its digest); BlobNotFound."""
        check_digest(digest)
        try:
            return self._run(lambda conn: b"".join(self._stream(conn, digest)))
        except BlobNotFound:
            if self.fallback is None or not self.fallback.exists(digest):
                raise
        data = self.fallback.get(digest)
        if hashlib.sha256(data).hexdigest() != digest:
            raise BlobDamaged(f"DATA_DIR/blobs holds other bytes under {digest}") from None
        self.put(data)  # healed: every process reaches it from now on
        return data

    # --- beyond the port --------------------------------------------------------------
    def exists(self, digest: str) -> bool:
        check_digest(digest)
        return self._run(lambda conn: conn.execute(
            f"SELECT 1 FROM {HEADS} WHERE digest = %s", (digest,)).fetchone() is not None)

    def chunks(self, digest: str) -> Iterator[bytes]:
        """The blob's bytes chunk by chunk, never all in memory here; the size and digest are
        checked as they pass (BlobDamaged at the end when they differ)."""
        check_digest(digest)
        with self._connection() as conn:
            yield from self._stream(conn, digest)

    def put_file(self, path: Path, digest: str) -> bool:
        """Stream the file at `path` in under `digest`, hashing it on the way: DigestMismatch
        (and nothing stored) when its bytes are not that digest's. False: already stored."""
        check_digest(digest)
        if self.exists(digest):
            return False

        def pieces() -> Iterator[bytes]:
            hasher = hashlib.sha256()
            with open(path, "rb") as f:
                while piece := f.read(self.chunk_size):
                    hasher.update(piece)
                    yield piece
            if hasher.hexdigest() != digest:
                raise DigestMismatch(f"{path} holds bytes whose sha256 is {hasher.hexdigest()}, not {digest}")

        return self._put(digest, pieces)

    def digests(self) -> list[str]:
        """Every complete blob's digest, in order."""
        return self._run(lambda conn: [d for (d,) in conn.execute(f"SELECT digest FROM {HEADS} ORDER BY digest")])

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    # --- internals --------------------------------------------------------------------
    def _put(self, digest: str, pieces: Any) -> bool:
        """Write the chunks `pieces()` yields and the head row in one transaction; False when
        the blob was already complete. `pieces` is called again on a retry."""

        def write(conn: psycopg.Connection[Any]) -> bool:
            with conn.transaction():
                if conn.execute(f"SELECT 1 FROM {HEADS} WHERE digest = %s", (digest,)).fetchone():
                    return False
                size = count = 0
                with conn.cursor() as cur:
                    for count, piece in enumerate(pieces(), 1):
                        cur.execute(f"INSERT INTO {CHUNKS} (digest, seq, data) VALUES (%s, %s, %s) "
                                    "ON CONFLICT DO NOTHING", (digest, count - 1, bytes(piece)))
                        size += len(piece)
                    cur.execute(f"INSERT INTO {HEADS} (digest, size, chunks) VALUES (%s, %s, %s) "
                                "ON CONFLICT DO NOTHING", (digest, size, count))
                    return cur.rowcount == 1

        return self._run(write)

    def _run(self, work: Any) -> Any:
        """`work(conn)` on a pooled connection; once more on a fresh one if that one broke."""
        try:
            with self._connection() as conn:
                return work(conn)
        except psycopg.OperationalError:
            with self._connection() as conn:
                return work(conn)

    @staticmethod
    def _stream(conn: psycopg.Connection[Any], digest: str) -> Iterator[bytes]:
        head = conn.execute(f"SELECT size, chunks FROM {HEADS} WHERE digest = %s", (digest,)).fetchone()
        if head is None:
            raise BlobNotFound(digest)
        size, count = head
        hasher, seen, seq = hashlib.sha256(), 0, 0
        with conn.cursor(binary=True) as cur:
            for seq, (data,) in enumerate(cur.stream(
                    f"SELECT data FROM {CHUNKS} WHERE digest = %s ORDER BY seq", (digest,)), 1):
                hasher.update(data)
                seen += len(data)
                yield bytes(data)
        if seen != size or seq != count or hasher.hexdigest() != digest:
            raise BlobDamaged(f"blob {digest} in PostgreSQL holds {seen} bytes in {seq} chunks, "
                              f"not {size} in {count}, or other bytes")

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        """A checked connection, given back idle (rolled back) afterwards; closed if it broke."""
        if not self._open.acquire(timeout=OPEN_WAIT_SECONDS):
            raise psycopg.OperationalError(f"all {MAX_OPEN} blob store connections stayed busy for {OPEN_WAIT_SECONDS} s")
        try:
            conn = self._borrow()
            try:
                yield conn
            except psycopg.OperationalError:
                conn.close()
                raise
            finally:
                self._give_back(conn)
        finally:
            self._open.release()

    def _borrow(self) -> psycopg.Connection[Any]:
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        if conn is not None and not conn.closed and not conn.broken:
            try:
                conn.execute("SELECT 1")
                conn.rollback()
                return conn
            except psycopg.Error:
                conn.close()
        conn = psycopg.connect(self.database_url, connect_timeout=10, application_name=self.application_name)
        if not self._ready:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (HEADS,))  # two starting at once
                conn.execute(_SCHEMA)
            self._ready = True
        return conn

    def _give_back(self, conn: psycopg.Connection[Any]) -> None:
        if conn.closed or conn.broken:
            conn.close()
            return
        try:
            conn.rollback()  # ends a read's transaction; nothing to undo after a committed write
        except psycopg.Error:
            conn.close()
            return
        with self._lock:
            if len(self._idle) < self.max_idle:
                self._idle.append(conn)
                return
        conn.close()


def blob_store(settings: Settings) -> BlobStore | PgBlobStore:
    """The blob store for these settings: PostgreSQL when DATABASE_URL is set (falling back to
    this machine's DATA_DIR/blobs for blobs not moved in yet), else files under DATA_DIR/blobs."""
    files = BlobStore(settings.data_dir / "blobs")
    if not settings.database_url:
        return files
    from infrastructure.pg_pool import application_name

    return PgBlobStore(settings.database_url, fallback=files, application_name=application_name(settings.pg_role))


def iter_file_blobs(root: Path) -> Iterable[tuple[str, Path]]:
    """(digest, path) of every blob file under a file store's root, in digest order; stray
    temporary files and anything else not named like a blob are left out."""
    if not root.is_dir():
        return []
    found = []
    for directory in sorted(root.iterdir()):
        if not directory.is_dir() or len(directory.name) != 2:
            continue
        for file in sorted(directory.iterdir()):
            digest = directory.name + file.name
            if file.is_file() and not file.is_symlink() and is_digest(digest):
                found.append((digest, file))
    return found


def is_digest(text: str) -> bool:
    try:
        check_digest(text)
    except ValueError:
        return False
    return True


def export_blobs(store: PgBlobStore, files: BlobStore, progress: Callable[[], None] | None = None) -> tuple[int, int]:
    """Write every blob in PostgreSQL as a file under `files` (streamed, chunk by chunk);
    (written, already there)."""
    written = kept = 0
    for digest in store.digests():
        if files.put_chunks(digest, store.chunks(digest)):
            written += 1
        else:
            kept += 1
        if progress:
            progress()
    return written, kept

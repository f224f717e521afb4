"""Content-addressed blob store: document bytes kept once under DATA_DIR/blobs/, named by sha256.

Layout: ``root/ab/cdef...`` where ``ab`` is the first two hex characters of the digest and the
file name is the remaining 62. A blob is written to a temporary file in its final directory,
fsynced and renamed into place, so readers never see a partial blob and a crash leaves at most a
stray temporary file (named ``.tmp-*``, never a valid digest). Blobs are immutable: writing the
same bytes again is a no-op.

This is the embedded store (no DATABASE_URL). With DATABASE_URL set, `pg_blobs.blob_store` gives the
PostgreSQL store (infrastructure/pg_blobs.py), which every machine reaches, with this one
under DATA_DIR/blobs as a fallback for blobs not yet moved in (`ledgerllm blobs migrate`).
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path

from infrastructure.files import atomic_write, fsync_dir

_DIGEST = re.compile(r"[0-9a-f]{64}")


class BlobNotFound(KeyError):
    """No blob has this digest."""


def check_digest(digest: object) -> str:
    """`digest` if it is 64 lowercase hex characters (a sha256), else ValueError."""
    if not isinstance(digest, str) or _DIGEST.fullmatch(digest) is None:
        raise ValueError("a blob digest is 64 lowercase hexadecimal characters (sha256)")
    return digest


class BlobStore:
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def path(self, digest: str) -> Path:
        """Where the blob with this digest lives (whether or not it exists).

        Only 64 lowercase hex characters are accepted, so no digest can name a path outside the
        root ("..", separators, NUL and the like are all rejected here).
        """
        check_digest(digest)
        return self.root / digest[:2] / digest[2:]

    def put(self, data: bytes) -> str:
        """Store ``data``; returns its sha256 hex digest. Idempotent."""
        digest = hashlib.sha256(data).hexdigest()
        target = self.path(digest)
        if target.exists():
            return digest
        # A concurrent writer of the same digest writes the same bytes: whichever rename wins is right.
        atomic_write(target, data)
        return digest

    def put_chunks(self, digest: str, chunks: Iterable[bytes]) -> bool:
        """Write a blob arriving in pieces (never whole in memory) under `digest`, as `put`
        does: a temporary file renamed into place. False: it was already there. The caller
        vouches for the digest (the PostgreSQL store checks it as the chunks pass)."""
        target = self.path(digest)
        if target.exists():
            return False
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                for chunk in chunks:
                    f.write(chunk)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            os.unlink(tmp)
            raise
        fsync_dir(target.parent)
        return True

    def get(self, digest: str) -> bytes:
        try:
            return self.path(digest).read_bytes()
        except FileNotFoundError:
            raise BlobNotFound(digest) from None

    def exists(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def close(self) -> None:
        """Nothing to release (the PostgreSQL store closes its connections)."""

"""`ledgerllm blobs migrate` and `blobs export DIR`.

`migrate` moves the document blobs a machine kept as files under
DATA_DIR/blobs (before blobs lived in PostgreSQL) into PostgreSQL, so every machine reaches them.

Each file is streamed in under the digest its name says, hashed on the way and committed only
when its bytes are that digest's (a damaged file is reported and left out). Blobs already in
PostgreSQL are skipped without reading the file, so a second run, or a run on every machine
that ever held blobs, is a no-op for what is already there. The files stay where they are;
once every machine has run it they can be deleted. Progress and a summary go to stderr
(`--json` puts the summary on stdout); the exit status is 1 when a file was damaged.

`export DIR` is the way back: every blob in PostgreSQL written as files under DIR in the
file store's layout (`DIR/ab/cdef...`), streamed chunk by chunk and checked; existing files
are kept. With `ledgerllm events export`, it carries documents to another store (put DIR at
the target's DATA_DIR/blobs, then `blobs migrate` there, or leave it: blobs found only there
are copied in when first read).

Safe beside running servers: blobs are immutable and puts are idempotent."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from api.progress import MIB, Progress, fail, mib, say


def _database_url() -> tuple[Any, str]:
    from infrastructure.settings import load_settings

    settings = load_settings()
    if not settings.database_url:
        raise fail("DATABASE_URL is not set: blobs stay as files under DATA_DIR/blobs in the embedded store; "
                   "set DATABASE_URL to the PostgreSQL database that holds them.")
    return settings, settings.database_url


def cmd_blobs_migrate(args: argparse.Namespace) -> None:
    from infrastructure.pg_blobs import DigestMismatch, PgBlobStore, iter_file_blobs

    settings, url = _database_url()
    root = settings.data_dir / "blobs"
    found = list(iter_file_blobs(root))
    say(f"{len(found)} blob files under {root}")
    store = PgBlobStore(url)
    copied = present = size = 0
    damaged: list[str] = []
    progress = Progress("migrated", len(found), "blobs", shown=len(found) >= 20)
    try:
        for digest, path in found:
            try:
                if store.put_file(path, digest):
                    copied += 1
                    size += path.stat().st_size
                else:
                    present += 1
            except DigestMismatch as e:
                damaged.append(digest)
                say(f"warning: {e}; left out (restore it from a backup, or from another machine's DATA_DIR/blobs)")
            progress.add()
    finally:
        progress.done()
        store.close()
    summary = {"files": len(found), "copied": copied, "copied_mib": round(size / MIB, 1),
               "already_stored": present, "damaged": damaged}
    say(f"blobs migrate: {copied} copied ({mib(size)}), {present} already in PostgreSQL, "
        f"{len(damaged)} damaged, of {len(found)} files under {root}")
    if args.json:
        print(json.dumps(summary))
    if damaged:
        raise SystemExit(1)


def cmd_blobs_export(args: argparse.Namespace) -> None:
    from infrastructure.blobs import BlobStore
    from infrastructure.pg_blobs import PgBlobStore, export_blobs

    _, url = _database_url()
    out = Path(args.dir).absolute()
    store = PgBlobStore(url)
    try:
        total = len(store.digests())
        progress = Progress("exported", total, "blobs", shown=total >= 20)
        written, kept = export_blobs(store, BlobStore(out), progress.add)
        progress.done()
    finally:
        store.close()
    say(f"blobs export: {written} written, {kept} already under {out}, of {total} blobs in PostgreSQL")

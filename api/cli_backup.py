"""`ledgerllm backup DIR` (its counterpart, `ledgerllm restore DIR`, is api/cli_restore.py).

Embedded, a backup copies each SQLite file with sqlite3's online backup API (a consistent
snapshot, taken beside a running server): the read models first and events.db last, so every
read model's position is at or below the events' head and the runners simply catch up after a
restore. Then the blobs (written before the events that name them) and the secret files (mode
0600). faiss/ is left out: it is rebuilt from the vectors read model on start. With
DATABASE_URL the database goes through `pg_dump --format=custom` in the snapshot the manifest's
positions were read in (api/cli_pg.py). DIR/manifest.json, written last, lists every file with
its size and sha256: restore checks all of them before it writes anything, and never deletes
what it replaces.

Only the standard library is imported at module level, so `ledgerllm --help` stays fast."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import sqlite3
import tempfile
import time
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from api.cli_pg import (
    APP, pg_dump_snapshot, pg_read_model_positions, tool,
)
from api.progress import Progress, fail, mib, say

FORMAT, VERSION = "ledgerllm-backup", 1
EVENTS_DB, MANIFEST, PG_DUMP = "events.db", "manifest.json", "postgres.dump"
SECRET_FILES = ("jwt-secret", "secrets.json", "master.key")  # master.key: wraps the data keys
KEYS_DB = "content_keys.db"  # the per-user data keys (infrastructure/content_keys.py)
CHUNK = 1 << 20
BIG = 64 << 20  # files from this size get a line of their own on stderr
_BLOB = re.compile(r"[0-9a-f]{2}/[0-9a-f]{62}")
PATTERNS = {
    "read_model": re.compile(r"[A-Za-z0-9_]+\.db"), "events": re.compile(re.escape(EVENTS_DB)),
    "blob": re.compile(r"blobs/" + _BLOB.pattern), "secret": re.compile("|".join(map(re.escape, SECRET_FILES))),
    "postgres": re.compile(re.escape(PG_DUMP)),
}


# files ---------------------------------------------------------------------------------------
def hash_file(path: Path, progress: Progress | None = None) -> tuple[int, str]:
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            digest.update(block)
            size += len(block)
            if progress:
                progress.add(len(block))
    return size, digest.hexdigest()


def copy_file(src: Path, dst: Path, mode: int) -> tuple[int, str]:
    """Copy under a temporary name beside `dst`, fsync, then rename: `dst` appears whole or not at all."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".tmp", dir=dst.parent)
    digest, size = hashlib.sha256(), 0
    try:
        with os.fdopen(fd, "wb") as out, open(src, "rb") as f:
            while block := f.read(CHUNK):
                out.write(block)
                digest.update(block)
                size += len(block)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return size, digest.hexdigest()


def _entry(root: Path, rel: str, kind: str, mode: int) -> dict[str, Any]:
    """A manifest row; `mode` is the source file's, restored with it (secrets: always 0600)."""
    size, digest = hash_file(root / rel)
    return {"path": rel, "kind": kind, "size": size, "sha256": digest, "mode": f"{mode & 0o777:04o}"}


def _blob_paths(blobs: Path) -> list[str]:
    """`ab/cdef...` of every blob; temporary files of unfinished writes are skipped."""
    if not blobs.is_dir():
        return []
    return sorted(f"{d.name}/{f.name}" for d in blobs.iterdir() if d.is_dir()
                  for f in d.iterdir() if _BLOB.fullmatch(f"{d.name}/{f.name}") and f.is_file())


def _copy_blobs(data_dir: Path, out: Path) -> list[dict[str, Any]]:
    names = _blob_paths(data_dir / "blobs")
    progress = Progress("copied", len(names), "blobs", shown=len(names) >= 100)
    entries = []
    for name in names:
        source = data_dir / "blobs" / name
        size, digest = copy_file(source, out / "blobs" / name, 0o600)
        if digest != name.replace("/", ""):
            say(f"warning: DATA_DIR/blobs/{name} does not hold the bytes its name says (damaged in DATA_DIR); "
                "copied as it is")
        entries.append({"path": f"blobs/{name}", "kind": "blob", "size": size, "sha256": digest,
                        "mode": f"{source.stat().st_mode & 0o777:04o}"})
        progress.add()
    progress.done()
    return entries


def _copy_secrets(data_dir: Path, out: Path) -> list[dict[str, Any]]:
    entries = []
    for name in SECRET_FILES:
        if (data_dir / name).is_file():
            size, digest = copy_file(data_dir / name, out / name, 0o600)
            entries.append({"path": name, "kind": "secret", "size": size, "sha256": digest, "mode": "0600"})
    return entries


# sqlite --------------------------------------------------------------------------------------
def _sqlite_value(conn: sqlite3.Connection, sql: str, *params: Any) -> int | None:
    try:
        row = conn.execute(sql, params).fetchone()
    except sqlite3.OperationalError:  # no such table: never written
        return None
    return None if row is None else row[0]


def _tracking(conn: sqlite3.Connection) -> int:
    return _sqlite_value(conn, "SELECT MAX(notification_id) FROM tracking WHERE application_name = ?", APP) or 0


def _head(conn: sqlite3.Connection) -> int:
    return _sqlite_value(conn, "SELECT MAX(rowid) FROM stored_events") or 0


def _snapshot_db(src: Path, dst: Path, position: Any) -> int:
    """One step of the online backup API: a consistent snapshot that concurrent writers never
    restart (WAL lets them go on). Returns `position` read from the copy."""
    size = src.stat().st_size + (src.with_name(src.name + "-wal").stat().st_size
                                 if src.with_name(src.name + "-wal").exists() else 0)
    began = time.monotonic()
    if size >= BIG:
        say(f"copying {src.name} ({mib(size)})...")
    source = sqlite3.connect(src, timeout=30)
    target = sqlite3.connect(dst)
    try:
        source.backup(target)
        found = position(target)
    finally:
        target.close()
        source.close()
    os.chmod(dst, 0o600)
    if size >= BIG:
        say(f"copied {src.name} in {time.monotonic() - began:.1f} s")
    return found


def _backup_sqlite(data_dir: Path, out: Path) -> dict[str, Any]:
    read_models = sorted(p for p in data_dir.glob("*.db") if p.name not in (EVENTS_DB, KEYS_DB) and p.is_file())
    positions, files = {}, []
    for db in read_models:  # first, so each read model's position is at or below the head copied next
        positions[db.stem] = _snapshot_db(db, out / db.name, _tracking)
        files.append(_entry(out, db.name, "read_model", db.stat().st_mode))
    head = _snapshot_db(data_dir / EVENTS_DB, out / EVENTS_DB, _head)
    files.append(_entry(out, EVENTS_DB, "events", (data_dir / EVENTS_DB).stat().st_mode))
    if (data_dir / KEYS_DB).is_file():  # after the events: it holds the key of every event copied
        _snapshot_db(data_dir / KEYS_DB, out / KEYS_DB, lambda conn: 0)
        files.append(_entry(out, KEYS_DB, "read_model", (data_dir / KEYS_DB).stat().st_mode))
    return {"backend": "sqlite", "events_head": head, "read_models": positions, "files": files}


def read_model_positions(settings: Any) -> dict[str, int]:
    """Each read model's tracking position, by name."""
    if settings.database_url:
        return pg_read_model_positions(settings.database_url)
    positions = {}
    for db in sorted(settings.data_dir.glob("*.db")):
        if db.name not in (EVENTS_DB, KEYS_DB):
            with closing(sqlite3.connect(db, timeout=30)) as conn:
                positions[db.stem] = _tracking(conn)
    return positions


# backup --------------------------------------------------------------------------------------
def cmd_backup(args: argparse.Namespace) -> None:
    from infrastructure.files import atomic_write
    from infrastructure.settings import load_settings

    settings = load_settings()
    out, data_dir = Path(args.dir).absolute(), settings.data_dir.absolute()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise fail(f"{out} already exists and is not empty; give a new directory (or an empty one), "
                   "so no earlier backup is overwritten.")
    if out == data_dir or data_dir in out.parents:
        raise fail(f"{out} is inside DATA_DIR ({data_dir}); keep backups outside it.")
    if settings.database_url:
        tool("pg_dump")
    elif not (data_dir / EVENTS_DB).is_file():
        raise fail(f"{data_dir / EVENTS_DB} does not exist: nothing to back up (is DATA_DIR right?).")
    began, created = time.monotonic(), not out.exists()
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        if settings.database_url:
            manifest = pg_dump_snapshot(settings.database_url, out / PG_DUMP)
            manifest["files"] = [_entry(out, PG_DUMP, "postgres", 0o600)]
        else:
            manifest = _backup_sqlite(data_dir, out)
        manifest["files"] += _copy_blobs(data_dir, out) + _copy_secrets(data_dir, out)
    except BaseException:  # what is in `out` is ours (it was new or empty): leave no half backup
        for entry in out.iterdir():
            if entry.is_dir():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        if created:
            out.rmdir()
        say(f"backup failed; nothing was left in {out}")
        raise
    blobs = sum(1 for f in manifest["files"] if f["kind"] == "blob")
    document = {"format": FORMAT, "version": VERSION, "created_at": datetime.now(UTC).isoformat(),
                **manifest, "skipped": ["faiss/ (rebuilt from the vectors read model on start)"]}
    atomic_write(out / MANIFEST, manifest_text(document).encode())
    size = sum(f["size"] for f in manifest["files"])
    say("faiss/ is not backed up: each server rebuilds it from the vectors read model on start")
    print(f"backed up {manifest['backend']} store to {out}: events head {manifest['events_head']}, "
          f"{len(manifest['read_models'])} read models, {blobs} blobs, {len(manifest['files'])} files, "
          f"{mib(size)} in {time.monotonic() - began:.1f} s")


def manifest_text(document: dict[str, Any]) -> str:
    """Readable JSON with one line per file (a store may have many blobs)."""
    head = {k: v for k, v in document.items() if k != "files"}
    files = ",\n".join("  " + json.dumps(f) for f in document["files"])
    return json.dumps(head, indent=1)[:-2] + f',\n "files": [\n{files}\n ]\n}}\n'

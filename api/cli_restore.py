"""`ledgerllm restore DIR`: a backup made by `ledgerllm backup` put back in place.

Every file's size and sha256 is checked against the manifest before anything is written; a
target that already holds data is refused unless --force, which moves it aside (and dumps
the old database there) instead of deleting it. Files land under a temporary name and are
renamed into place, events last; the end is a check of the digest chain.

Only the standard library is imported at module level, so `ledgerllm --help` stays fast."""

from __future__ import annotations

import argparse
import json
import re
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from api.cli_backup import (
    BIG, EVENTS_DB, FORMAT, MANIFEST, PATTERNS, PG_DUMP, VERSION, copy_file, hash_file, read_model_positions,
)
from api.cli_pg import EVENTS_TABLE, pg_dump, pg_has_events, pg_restore
from api.progress import MIB, Progress, fail, say


def _read_manifest(src: Path) -> dict[str, Any]:
    if not src.is_dir():
        raise fail(f"{src} is not a directory made by `ledgerllm backup`.")
    try:
        manifest = json.loads((src / MANIFEST).read_text())
    except FileNotFoundError:
        raise fail(f"{src} has no {MANIFEST}: not a finished ledgerllm backup (an interrupted backup "
                   "leaves none); use another backup.") from None
    except ValueError:
        raise fail(f"{src / MANIFEST} is damaged (not JSON); use another backup.") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise fail(f"{src / MANIFEST} is not a ledgerllm backup manifest.")
    if manifest.get("version") != VERSION:
        raise fail(f"this backup has format version {manifest.get('version')!r}; this ledgerllm reads "
                   f"version {VERSION}. Restore it with the ledgerllm that made it.")
    files, backend = manifest.get("files"), manifest.get("backend")
    if not isinstance(files, list) or backend not in ("sqlite", "postgres"):
        raise fail(f"{src / MANIFEST} is damaged (no file list or backend); use another backup.")
    for f in files:
        kind = f.get("kind") if isinstance(f, dict) else None
        if kind not in PATTERNS or not isinstance(f.get("path"), str) or not PATTERNS[kind].fullmatch(f["path"]) \
                or not isinstance(f.get("size"), int) or not isinstance(f.get("sha256"), str) \
                or not re.fullmatch(r"0[0-7]{3}", str(f.get("mode", "0600"))):
            raise fail(f"{src / MANIFEST} is damaged (bad entry {f!r}); use another backup.")
    main = "events" if backend == "sqlite" else "postgres"
    if sum(f["kind"] == main for f in files) != 1:
        raise fail(f"{src / MANIFEST} lists no {EVENTS_DB if main == 'events' else PG_DUMP}; use another backup.")
    return manifest


def _verify(src: Path, files: list[dict[str, Any]]) -> None:
    """Every file's size and sha256, before anything is written."""
    total = sum(f["size"] for f in files)
    progress = Progress("verified", total, "MiB", per=MIB, shown=total >= BIG)
    for f in files:
        path = src / f["path"]
        if not path.is_file():
            raise fail(f"backup damaged: {f['path']} is missing; nothing was restored. Use another backup.")
        if (path.stat().st_size, hash_file(path, progress)[1]) != (f["size"], f["sha256"]):
            raise fail(f"backup damaged: {f['path']} does not match its sha256 in {MANIFEST}; nothing was "
                       "restored. Use another backup.")
    progress.done()


def _occupants(data_dir: Path) -> list[str]:
    """What in DATA_DIR a restore would replace or contradict (blobs merge: they are content-addressed)."""
    if not data_dir.is_dir():
        return []
    return sorted(p.name for p in data_dir.iterdir() if p.name != "blobs")


def _move_aside(data_dir: Path) -> Path:
    """DATA_DIR's contents go to DATA_DIR/../<name>.before-restore-<time>; nothing is deleted."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    aside = data_dir.parent / f"{data_dir.name}.before-restore-{stamp}"
    n = 1
    while aside.exists():
        n += 1
        aside = data_dir.parent / f"{data_dir.name}.before-restore-{stamp}-{n}"
    aside.mkdir(mode=0o700)
    for entry in data_dir.iterdir() if data_dir.is_dir() else ():
        shutil.move(str(entry), str(aside / entry.name))
    return aside


def cmd_restore(args: argparse.Namespace) -> None:
    from infrastructure.files import fsync_dir
    from infrastructure.settings import load_settings

    src = Path(args.dir).absolute()
    manifest = _read_manifest(src)
    files, backend = manifest["files"], manifest["backend"]
    settings = load_settings()
    data_dir = settings.data_dir.absolute()
    if backend == "postgres" and not settings.database_url:
        raise fail("this is a PostgreSQL backup: set DATABASE_URL to the database to restore into.")
    if backend == "sqlite" and settings.database_url:
        raise fail("this is an embedded (SQLite) backup: unset DATABASE_URL to restore into DATA_DIR; to move "
                   "to PostgreSQL, restore it embedded, then `ledgerllm events export` and `events import`.")
    names = _occupants(data_dir)
    found = [f"{data_dir} holds {', '.join(names[:4])}{' and more' if len(names) > 4 else ''}"] if names else []
    if backend == "postgres" and pg_has_events(settings.database_url):
        found.insert(0, f"the database has events ({EVENTS_TABLE} has rows)")
    if found and not args.force:
        dumped = " (the database is dumped there first)" if backend == "postgres" else ""
        raise fail(f"the target already holds data: {'; '.join(found)}. Stop the server, then run again with "
                   f"--force: the current contents move to {data_dir.name}.before-restore-<time> beside "
                   f"DATA_DIR{dumped}; nothing is deleted.")
    began = time.monotonic()
    _verify(src, files)
    if found:
        aside = _move_aside(data_dir)
        if backend == "postgres":
            say("dumping the current database first...")
            pg_dump(settings.database_url, aside / PG_DUMP)
        say(f"moved the current data to {aside}")
    data_dir.mkdir(parents=True, exist_ok=True)
    if backend == "postgres":
        pg_restore(settings.database_url, src / PG_DUMP)
    order = {"blob": 0, "secret": 1, "read_model": 2, "events": 3}  # events.db last: its presence means done
    todo = sorted((f for f in files if f["kind"] in order), key=lambda f: order[f["kind"]])
    progress = Progress("restored", len(todo), "files", shown=len(todo) >= 100)
    for f in todo:
        target = data_dir / f["path"]
        if f["kind"] == "blob" and target.exists():
            continue
        mode = 0o600 if f["kind"] == "secret" else int(f.get("mode", "0600"), 8) & 0o777
        if copy_file(src / f["path"], target, mode)[1] != f["sha256"]:
            raise fail(f"{src / f['path']} changed while it was restored; run the restore again.")
        progress.add()
    progress.done()
    for directory in {data_dir, *((data_dir / f["path"]).parent for f in todo)}:
        fsync_dir(directory)
    _report_restored(settings, manifest, time.monotonic() - began)


def _report_restored(settings: Any, manifest: dict[str, Any], seconds: float) -> None:
    """The restored head, read models ahead of it (tables the backup did not have), the chain."""
    from application.ledger import Ledger
    from infrastructure.chain import verify_chain
    from infrastructure.eventstore import ledger_env

    positions = read_model_positions(settings) if settings.database_url else {}
    ledger = Ledger(env=ledger_env(settings))
    try:
        head = ledger.recorder.max_notification_id() or 0
        chain = verify_chain(ledger.recorder)
    finally:
        ledger.close()
    if head != manifest.get("events_head"):
        say(f"warning: the restored head is {head}, the manifest says {manifest.get('events_head')}")
    ahead = sorted(name for name, p in positions.items() if p > head)
    if ahead:
        say(f"warning: read models that were not in the backup are ahead of the restored events: {', '.join(ahead)};"
            " drop their tables, they are rebuilt on start")
    print(f"restored {manifest['backend']} backup of {manifest.get('created_at')} into {settings.data_dir}: events "
          f"head {head} ({seconds:.1f} s); the read models catch up on the next start")
    if not chain.intact:
        first = chain.problems[0]
        raise fail(f"restored, but the digest chain is broken: {chain.problem_count} problem(s), the first at "
                   f"position {first.position} ({first.kind}: {first.detail}). See `ledgerllm audit verify`.")
    say(f"digest chain intact over {chain.checked} events; check it again any time with `ledgerllm audit verify`")


"""`ledgerllm replay --until POSITION|TIME --into DIR`: the read models as they were at a past moment.

DIR becomes a self-contained embedded data dir that `DATA_DIR=DIR ledgerllm serve --read-only`
serves over the normal HTTP API:

- `events.db`: exactly the source's events at positions ≤ P, at the SAME positions (SQLite
  rowid = source position), with a digest chain of its own; since positions and events are
  the same, its head digest equals the source chain's link at P (checked, and recorded).
- `blobs`: a symlink to the source's blob directory (blobs are content-addressed, immutable
  and append-only, so every blob an event ≤ P names is there).
- one SQLite file per read model, built from `events.db` up to P. The vectors read model
  starts from a copy of the source's embedding cache, so nothing is embedded again.
- `replay.json`: the source (path, or database URL without its password), P, the time of the
  event at P, when the replay was made, and the chain's head digest.

The source is only read (a batch of BATCH events at a time), beside a running server. Results
go to stdout (`DIR<TAB>P`), messages and progress to stderr."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sqlite3
import sys
from contextlib import closing
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlparse, urlunparse
from uuid import UUID

import msgspec

from api.cli_events import open_ledger
from api.progress import Progress, fail, say
from api.wiring import make_projection
from infrastructure.pg_pool import application_name
from projections.catalog import PROJECTIONS
from application.audit import Bound, parse_bound
from application.ledger import Ledger
from infrastructure.eventstore import copy_content_keys, ledger_env
from infrastructure.settings import REPLAY_MARK, Settings, load_settings

BATCH = 1000
MANIFEST = REPLAY_MARK  # its presence makes DIR read-only (infrastructure/settings.py)


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


# the source ------------------------------------------------------------------------------------
def _open_source(settings: Settings) -> Ledger:
    if not settings.database_url and not (settings.data_dir / "events.db").is_file():
        raise fail(f"{settings.data_dir / 'events.db'} does not exist: no store to replay (is DATA_DIR right?).")
    return open_ledger(settings)


def _describe_source(settings: Settings) -> str:
    if not settings.database_url:
        return str(settings.data_dir.resolve())
    url = urlparse(settings.database_url)
    netloc = url.hostname or ""
    if url.username:
        netloc = f"{url.username}@{netloc}"
    if url.port:
        netloc = f"{netloc}:{url.port}"
    return urlunparse(url._replace(netloc=netloc))


def _last_at_or_before(source: Ledger, position: int) -> Any:
    """The stored event with the highest position ≤ `position` (PostgreSQL positions can have gaps)."""
    stop = position
    while stop >= 1:
        found = source.recorder.select_notifications(max(1, stop - BATCH + 1), BATCH, stop=stop)
        if found:
            return found[-1]
        stop -= BATCH
    return None


def resolve(source: Ledger, until: Bound, head: int) -> tuple[int, datetime]:
    """P and the time of the event at P: a position as given (the last event at or before it),
    or the highest position whose event time is at or before the moment (a full scan)."""
    if until.position is not None:
        if until.position < 1 or until.position > head:
            raise fail(f"position {until.position} is not in the store: positions run from 1 to {head} "
                       "(the head); see `ledgerllm events tail`.")
        found = _last_at_or_before(source, until.position)
        if found is None:
            raise fail(f"no event at or before position {until.position}.")
        return found.id, source.mapper.to_domain_event(found).timestamp
    assert until.moment is not None
    progress = Progress(f"finding the last event at or before {_iso(until.moment)}", head)
    best: tuple[int, datetime] | None = None
    first: datetime | None = None
    start = 1
    while True:
        notifications = source.recorder.select_notifications(start, BATCH, stop=head)
        for n in notifications:
            moment = source.mapper.to_domain_event(n).timestamp
            first = first or moment
            if moment <= until.moment and (best is None or n.id > best[0]):
                best = (n.id, moment)
        progress.add(len(notifications))
        if len(notifications) < BATCH:
            break
        start = notifications[-1].id + 1
    progress.done()
    if best is None:
        raise fail(f"no event at or before {_iso(until.moment)}: the first event is from "
                   f"{_iso(first) if first else 'never'}.")
    return best


# DIR -----------------------------------------------------------------------------------------
def _check_target(target: Path, settings: Settings) -> bool:
    """True if DIR exists (empty); refuses anything else with a clear error."""
    if not target.exists():
        return False
    if not target.is_dir():
        raise fail(f"{target} exists and is not a directory; give a new or empty directory.")
    if any(target.iterdir()):
        raise fail(f"{target} is not empty; give a new or empty directory (a replay never writes over files).")
    if not settings.database_url and target.resolve() == settings.data_dir.resolve():
        raise fail("DIR is DATA_DIR itself; give another directory.")
    return True


def _clear(target: Path, existed: bool) -> None:
    """Remove what an interrupted replay wrote (DIR was new or empty). The blobs symlink is
    unlinked, never followed."""
    if not existed:
        shutil.rmtree(target, ignore_errors=True)
        return
    for child in target.iterdir():
        if child.is_symlink() or child.is_file():
            child.unlink(missing_ok=True)
        else:
            shutil.rmtree(child, ignore_errors=True)


def copy_events(source: Ledger, replay: Ledger, position: int) -> int:
    """Every event at or before `position`, at its own position; then DIR's chain links."""
    recorder = replay.recorder
    table = recorder.events_table_name  # type: ignore[attr-defined]
    insert = f"INSERT INTO {table} (rowid, originator_id, originator_version, topic, state) VALUES (?, ?, ?, ?, ?)"
    progress = Progress("copying events", position)
    copied, start = 0, 1
    while True:
        notifications = source.recorder.select_notifications(start, BATCH, stop=position)
        if notifications:
            rows = [(n.id, n.originator_id.hex if isinstance(n.originator_id, UUID) else str(n.originator_id),
                     n.originator_version, n.topic, bytes(n.state)) for n in notifications]
            with recorder.datastore.transaction(commit=True) as c:  # type: ignore[attr-defined]
                c.executemany(insert, rows)
            copied += len(rows)
            progress.add(len(rows))
        if len(notifications) < BATCH or notifications[-1].id >= position:
            break
        start = notifications[-1].id + 1
    progress.done()
    recorder.link_unchained()  # type: ignore[attr-defined]
    return copied


def head_link(recorder: Any, position: int) -> bytes | None:
    links = recorder.read_links(position - 1, 1)
    return links[0][2] if links and links[0][0] == position else None


def link_blobs(settings: Settings, target: Path) -> Path | None:
    """DIR/blobs → the source's blobs (absolute). No blob directory yet means no event names a
    blob: DIR gets an empty one of its own. With PostgreSQL the blobs live there: they are
    copied into DIR/blobs, since the replay is an embedded store of its own."""
    if settings.database_url:
        from infrastructure.blobs import BlobStore
        from infrastructure.pg_blobs import PgBlobStore, export_blobs

        store = PgBlobStore(settings.database_url)
        try:
            written, _ = export_blobs(store, BlobStore(target / "blobs"))
        finally:
            store.close()
        (target / "blobs").mkdir(exist_ok=True)
        say(f"{written} document blobs copied from PostgreSQL into {target / 'blobs'}")
        return None
    blobs = (settings.data_dir / "blobs").resolve()
    if not blobs.is_dir():
        (target / "blobs").mkdir()
        return None
    (target / "blobs").symlink_to(blobs, target_is_directory=True)
    return blobs


def copy_embedding_cache(settings: Settings, view: Any, target: Path) -> int:
    """The source's embedding cache into DIR's vectors read model, before it is built."""
    if settings.database_url:
        return _copy_cache_from_postgres(settings.database_url, view)
    source = settings.data_dir / "vectors.db"
    if not source.is_file():
        return 0
    with closing(sqlite3.connect(target / "vectors.db", timeout=30)) as conn:
        conn.execute("ATTACH DATABASE ? AS src", (str(source.resolve()),))
        if not conn.execute("SELECT 1 FROM src.sqlite_master WHERE type = 'table' AND name = 'embedding_cache'"
                            ).fetchone():
            return 0
        with conn:
            copied = conn.execute("INSERT OR IGNORE INTO main.embedding_cache (text_hash, model, vector) "
                                  "SELECT text_hash, model, vector FROM src.embedding_cache").rowcount
        conn.execute("DETACH DATABASE src")
    return copied


def _copy_cache_from_postgres(url: str, view: Any) -> int:
    import psycopg

    copied = 0
    with psycopg.connect(url, connect_timeout=10, application_name=application_name("cli")) as conn:
        if conn.execute("SELECT to_regclass('embedding_cache')").fetchone()[0] is None:
            return 0
        with conn.cursor(name="ledgerllm_replay_cache") as cursor:  # server-side: a batch at a time
            cursor.execute("SELECT text_hash, model, vector FROM embedding_cache")
            while rows := cursor.fetchmany(BATCH):
                with view.write() as tx:
                    tx.executemany("INSERT INTO embedding_cache VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                                   [(h, m, bytes(v)) for h, m, v in rows])
                copied += len(rows)
    return copied


def build_read_models(settings: Settings, dir_settings: Settings, replay: Ledger, target: Path, events: int) -> None:
    """Each read model filled as a rebuild fills its scratch copy (no journal or syncs, its
    indexes made at the end), then its file synced once: DIR is whole before the manifest
    that marks it done is written."""
    from infrastructure.eventstore import open_view
    from projections.rebuild import fill

    for name, cls in PROJECTIONS.items():
        projection = make_projection(dir_settings, name, open_view(dir_settings, name, cls.views(bulk=True),
                                                                   bulk=True))
        try:
            if name == "vectors":
                copied = copy_embedding_cache(settings, projection.view, target)
                say(f"copied {copied:,} cached embeddings from the source (nothing is embedded again)")
            progress = Progress(f"building {name}", events)
            fill(replay, projection, progress=progress.add, workers=settings.rebuild_workers)
            projection.view.finish()  # type: ignore[attr-defined]
            progress.done()
        finally:
            projection.view.datastore.close()  # type: ignore[attr-defined]
        _sync(target / f"{name}.db")


def _sync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


# the command ---------------------------------------------------------------------------------
def cmd_replay(args: argparse.Namespace) -> None:
    settings = load_settings()
    target = Path(args.into).expanduser()
    until = parse_bound(args.until, "--until")
    if until is None:
        raise fail("--until needs an event position or an ISO 8601 time.")
    existed = _check_target(target, settings)
    source = _open_source(settings)
    try:
        head = source.recorder.max_notification_id() or 0
        if head == 0:
            raise fail("the store holds no event yet: nothing to replay.")
        position, moment = resolve(source, until, head)
        say(f"replaying the store up to position {position} (of {head}), an event of {_iso(moment)}")
        target.mkdir(parents=True, exist_ok=True)
        try:
            manifest = _build(settings, source, target, position, moment)
        except BaseException:
            _clear(target, existed)
            raise
    finally:
        source.close()
    print(f"{target}\t{position}")
    sys.stdout.flush()
    unset = "env -u DATABASE_URL -u REDIS_URL " if settings.database_url or settings.redis_url else ""
    say(f"replay of position {position} ({manifest['time']}) is in {target}; serve it read-only with:\n"
        f"  {unset}DATA_DIR={shlex.quote(str(target.resolve()))} ledgerllm serve --read-only")


def _build(settings: Settings, source: Ledger, target: Path, position: int, moment: datetime) -> dict[str, Any]:
    dir_settings = msgspec.structs.replace(settings, data_dir=target, database_url=None, redis_url=None,
                                           read_only=False)
    copy_content_keys(settings, dir_settings)  # the copied events open as in the source
    replay = Ledger(env=ledger_env(dir_settings))
    try:
        events = copy_events(source, replay, position)
        digest = head_link(replay.recorder, position)
        expected = head_link(source.recorder, position)
        if digest != expected:
            say(f"warning: the chain of {target} ends in a digest that differs from the source chain's link at "
                f"{position}: run `ledgerllm verify` on the source; it may have been altered.")
        blobs = link_blobs(settings, target)
        if blobs is not None:
            say(f"{target / 'blobs'} links to {blobs}: blobs are content-addressed, immutable and only ever "
                "added to, so every document this replay names is there (keep that directory)")
        build_read_models(settings, dir_settings, replay, target, events)
    finally:
        replay.close()
    manifest = {
        "source": _describe_source(settings), "backend": "postgres" if settings.database_url else "sqlite",
        "position": position, "time": _iso(moment), "events": events,
        "created": _iso(datetime.now(timezone.utc)),
        "head_digest": digest.hex() if digest else None,
        "source_link_digest": expected.hex() if expected else None,
        "blobs": str(blobs) if blobs else None,
    }
    (target / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest

"""`ledgerllm backup DIR`, `ledgerllm restore DIR` and `ledgerllm events import FILE`.

Embedded, a backup copies each SQLite file with sqlite3's online backup API (a consistent
snapshot, taken beside a running server): the read models first and events.db last, so every
read model's position is at or below the events' head and the runners simply catch up after a
restore. Then the blobs (written before the events that name them) and the secret files (mode
0600). faiss/ is left out: it is rebuilt from the vectors read model on start. With
DATABASE_URL the database goes through `pg_dump --format=custom` in the snapshot the manifest's
positions were read in; the password travels in PGPASSWORD, never on a command line.
DIR/manifest.json, written last, lists every file with its size and sha256: restore checks all
of them before it writes anything, and never deletes what it replaces.

Only the standard library is imported at module level, so `ledgerllm --help` stays fast."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import IO, Any

FORMAT, VERSION = "ledgerllm-backup", 1
EVENTS_DB, MANIFEST, PG_DUMP = "events.db", "manifest.json", "postgres.dump"
SECRET_FILES = ("jwt-secret", "secrets.json")
APP = "Ledger"  # application.ledger.Ledger.name: the tracking rows' application name
EVENTS_TABLE = "ledger_events"  # its PostgreSQL events table
BATCH = 1000
CHUNK = 1 << 20
BIG = 64 << 20  # files from this size get a line of their own on stderr
_BLOB = re.compile(r"[0-9a-f]{2}/[0-9a-f]{62}")
_PATTERNS = {
    "read_model": re.compile(r"[A-Za-z0-9_]+\.db"), "events": re.compile(re.escape(EVENTS_DB)),
    "blob": re.compile(r"blobs/" + _BLOB.pattern), "secret": re.compile("|".join(map(re.escape, SECRET_FILES))),
    "postgres": re.compile(re.escape(PG_DUMP)),
}


def _fail(message: str) -> SystemExit:
    return SystemExit(f"error: {message}")


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _mib(size: int) -> str:
    return f"{size / (1 << 20):,.1f} MiB"


class Progress:
    """`LABEL N[/TOTAL] (R UNIT/s)` on stderr: one redrawn line on a terminal, else a line every
    5 s. Counts are divided by `per` when shown (bytes as MiB)."""

    def __init__(self, label: str, total: int | None = None, unit: str = "", per: int = 1) -> None:
        self.label, self.total, self.unit, self.per, self.count = label, total, unit, per, 0
        self.tty = sys.stderr.isatty()
        self.began = self.drawn = time.monotonic()

    def add(self, n: int = 1) -> None:
        self.count += n
        if time.monotonic() - self.drawn >= (0.5 if self.tty else 5.0):
            self._draw()

    def _draw(self, end: str = "") -> None:
        self.drawn = time.monotonic()
        rate = self.count / self.per / max(self.drawn - self.began, 1e-6)
        of = f"/{self.total // self.per:,}" if self.total is not None else ""
        line = f"{self.label} {self.count // self.per:,}{of} {self.unit} ({rate:,.0f} {self.unit}/s)"
        sys.stderr.write(f"\r{line}{end}" if self.tty else f"{line}\n")
        sys.stderr.flush()

    def done(self) -> None:
        if self.tty and self.count:
            self._draw("\n")


# files ---------------------------------------------------------------------------------------
def _hash_file(path: Path, progress: Progress | None = None) -> tuple[int, str]:
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            digest.update(block)
            size += len(block)
            if progress:
                progress.add(len(block))
    return size, digest.hexdigest()


def _copy_file(src: Path, dst: Path, mode: int) -> tuple[int, str]:
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
    size, digest = _hash_file(root / rel)
    return {"path": rel, "kind": kind, "size": size, "sha256": digest, "mode": f"{mode & 0o777:04o}"}


def _blob_paths(blobs: Path) -> list[str]:
    """`ab/cdef...` of every blob; temporary files of unfinished writes are skipped."""
    if not blobs.is_dir():
        return []
    return sorted(f"{d.name}/{f.name}" for d in blobs.iterdir() if d.is_dir()
                  for f in d.iterdir() if _BLOB.fullmatch(f"{d.name}/{f.name}") and f.is_file())


def _copy_blobs(data_dir: Path, out: Path) -> list[dict[str, Any]]:
    names = _blob_paths(data_dir / "blobs")
    progress = Progress("copied", len(names), "blobs") if len(names) >= 100 else None
    entries = []
    for name in names:
        source = data_dir / "blobs" / name
        size, digest = _copy_file(source, out / "blobs" / name, 0o600)
        if digest != name.replace("/", ""):
            _say(f"warning: DATA_DIR/blobs/{name} does not hold the bytes its name says (damaged in DATA_DIR); "
                 "copied as it is")
        entries.append({"path": f"blobs/{name}", "kind": "blob", "size": size, "sha256": digest,
                        "mode": f"{source.stat().st_mode & 0o777:04o}"})
        if progress:
            progress.add()
    if progress:
        progress.done()
    return entries


def _copy_secrets(data_dir: Path, out: Path) -> list[dict[str, Any]]:
    entries = []
    for name in SECRET_FILES:
        if (data_dir / name).is_file():
            size, digest = _copy_file(data_dir / name, out / name, 0o600)
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
        _say(f"copying {src.name} ({_mib(size)})...")
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
        _say(f"copied {src.name} in {time.monotonic() - began:.1f} s")
    return found


def _backup_sqlite(data_dir: Path, out: Path) -> dict[str, Any]:
    read_models = sorted(p for p in data_dir.glob("*.db") if p.name != EVENTS_DB and p.is_file())
    positions, files = {}, []
    for db in read_models:  # first, so each read model's position is at or below the head copied next
        positions[db.stem] = _snapshot_db(db, out / db.name, _tracking)
        files.append(_entry(out, db.name, "read_model", db.stat().st_mode))
    head = _snapshot_db(data_dir / EVENTS_DB, out / EVENTS_DB, _head)
    files.append(_entry(out, EVENTS_DB, "events", (data_dir / EVENTS_DB).stat().st_mode))
    return {"backend": "sqlite", "events_head": head, "read_models": positions, "files": files}


# postgres ------------------------------------------------------------------------------------
def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise _fail(f"{name} is not on PATH; install the PostgreSQL client tools (Debian/Ubuntu: "
                    f"`apt-get install postgresql-client`, a version at least the server's), then run again.")
    return path


def _pg_env(database_url: str) -> dict[str, str]:
    """The connection as libpq variables: the password goes in PGPASSWORD, never in argv."""
    from infrastructure.settings import postgres_env

    parts = postgres_env(database_url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(PGHOST=parts["POSTGRES_HOST"], PGPORT=parts["POSTGRES_PORT"], PGUSER=parts["POSTGRES_USER"],
               PGDATABASE=parts["POSTGRES_DBNAME"], PGCONNECT_TIMEOUT="10")
    if parts["POSTGRES_PASSWORD"]:
        env["PGPASSWORD"] = parts["POSTGRES_PASSWORD"]
    return env


def _run_tool(argv: list[str], env: dict[str, str], grows: Path | None = None) -> None:
    """Run pg_dump/pg_restore; show the size of `grows` while it runs; its stderr on failure."""
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
        shown = time.monotonic()
        while proc.poll() is None:
            time.sleep(0.2)
            if grows is not None and grows.exists() and time.monotonic() - shown >= (1 if sys.stderr.isatty() else 10):
                shown = time.monotonic()
                _say(f"{Path(argv[0]).name}: {_mib(grows.stat().st_size)} written")
        err.seek(0)
        message = err.read().decode(errors="replace").strip()
    if proc.returncode != 0:
        raise _fail(f"{Path(argv[0]).name} failed (exit {proc.returncode}):\n{message}")


def _pg_positions(conn: Any) -> tuple[int, dict[str, int]]:
    from psycopg import sql

    exists = conn.execute("SELECT to_regclass(%s)", (EVENTS_TABLE,)).fetchone()[0]
    head = conn.execute(sql.SQL("SELECT MAX(notification_id) FROM {}").format(
        sql.Identifier(EVENTS_TABLE))).fetchone()[0] if exists else None
    positions = {}
    tables = conn.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
                          " AND table_name LIKE %s ORDER BY table_name", ("%\\_tracking",)).fetchall()
    for (table,) in tables:
        row = conn.execute(sql.SQL("SELECT MAX(notification_id) FROM {} WHERE application_name = %s").format(
            sql.Identifier(table)), (APP,)).fetchone()
        positions[table.removesuffix("_tracking")] = row[0] or 0
    return head or 0, positions


def _pg_dump(database_url: str, path: Path, snapshot: str | None = None) -> None:
    argv = [_tool("pg_dump"), "--format=custom", f"--file={path}", "--no-password"]
    if snapshot:
        argv.append(f"--snapshot={snapshot}")
    _run_tool(argv, _pg_env(database_url), grows=path)
    os.chmod(path, 0o600)


def _backup_postgres(database_url: str, out: Path) -> dict[str, Any]:
    """pg_dump in a snapshot exported by our own REPEATABLE READ transaction: the positions
    in the manifest are exactly those of the dump."""
    import psycopg

    with psycopg.connect(database_url, connect_timeout=10) as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        snapshot = conn.execute("SELECT pg_export_snapshot()").fetchone()[0]
        head, positions = _pg_positions(conn)
        if not head:
            raise _fail(f"the database has no events ({EVENTS_TABLE} is empty or missing): nothing to back up.")
        _say(f"running pg_dump (events head {head})...")
        _pg_dump(database_url, out / PG_DUMP, snapshot)
        conn.rollback()
    database = PurePosixPath(database_url.split("?")[0]).name
    return {"backend": "postgres", "database": database, "events_head": head, "read_models": positions,
            "files": [_entry(out, PG_DUMP, "postgres", 0o600)]}


def _pg_has_events(database_url: str) -> bool:
    import psycopg

    with psycopg.connect(database_url, connect_timeout=10) as conn:
        return bool(_pg_positions(conn)[0])


# backup --------------------------------------------------------------------------------------
def cmd_backup(args: argparse.Namespace) -> None:
    from infrastructure.files import atomic_write
    from infrastructure.settings import load_settings

    settings = load_settings()
    out, data_dir = Path(args.dir).absolute(), settings.data_dir.absolute()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise _fail(f"{out} already exists and is not empty; give a new directory (or an empty one), "
                    "so no earlier backup is overwritten.")
    if out == data_dir or data_dir in out.parents:
        raise _fail(f"{out} is inside DATA_DIR ({data_dir}); keep backups outside it.")
    if settings.database_url:
        _tool("pg_dump")
    elif not (data_dir / EVENTS_DB).is_file():
        raise _fail(f"{data_dir / EVENTS_DB} does not exist: nothing to back up (is DATA_DIR right?).")
    began, created = time.monotonic(), not out.exists()
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        if settings.database_url:
            manifest = _backup_postgres(settings.database_url, out)
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
        _say(f"backup failed; nothing was left in {out}")
        raise
    blobs = sum(1 for f in manifest["files"] if f["kind"] == "blob")
    document = {"format": FORMAT, "version": VERSION, "created_at": datetime.now(UTC).isoformat(),
                **manifest, "skipped": ["faiss/ (rebuilt from the vectors read model on start)"]}
    atomic_write(out / MANIFEST, _manifest_text(document).encode())
    size = sum(f["size"] for f in manifest["files"])
    _say("faiss/ is not backed up: each server rebuilds it from the vectors read model on start")
    print(f"backed up {manifest['backend']} store to {out}: events head {manifest['events_head']}, "
          f"{len(manifest['read_models'])} read models, {blobs} blobs, {len(manifest['files'])} files, "
          f"{_mib(size)} in {time.monotonic() - began:.1f} s")


def _manifest_text(document: dict[str, Any]) -> str:
    """Readable JSON with one line per file (a store may have many blobs)."""
    head = {k: v for k, v in document.items() if k != "files"}
    files = ",\n".join("  " + json.dumps(f) for f in document["files"])
    return json.dumps(head, indent=1)[:-2] + f',\n "files": [\n{files}\n ]\n}}\n'


# restore -------------------------------------------------------------------------------------
def _read_manifest(src: Path) -> dict[str, Any]:
    if not src.is_dir():
        raise _fail(f"{src} is not a directory made by `ledgerllm backup`.")
    try:
        manifest = json.loads((src / MANIFEST).read_text())
    except FileNotFoundError:
        raise _fail(f"{src} has no {MANIFEST}: not a finished ledgerllm backup (an interrupted backup "
                    "leaves none); use another backup.") from None
    except ValueError:
        raise _fail(f"{src / MANIFEST} is damaged (not JSON); use another backup.") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise _fail(f"{src / MANIFEST} is not a ledgerllm backup manifest.")
    if manifest.get("version") != VERSION:
        raise _fail(f"this backup has format version {manifest.get('version')!r}; this ledgerllm reads "
                    f"version {VERSION}. Restore it with the ledgerllm that made it.")
    files, backend = manifest.get("files"), manifest.get("backend")
    if not isinstance(files, list) or backend not in ("sqlite", "postgres"):
        raise _fail(f"{src / MANIFEST} is damaged (no file list or backend); use another backup.")
    for f in files:
        kind = f.get("kind") if isinstance(f, dict) else None
        if kind not in _PATTERNS or not isinstance(f.get("path"), str) or not _PATTERNS[kind].fullmatch(f["path"]) \
                or not isinstance(f.get("size"), int) or not isinstance(f.get("sha256"), str) \
                or not re.fullmatch(r"0[0-7]{3}", str(f.get("mode", "0600"))):
            raise _fail(f"{src / MANIFEST} is damaged (bad entry {f!r}); use another backup.")
    main = "events" if backend == "sqlite" else "postgres"
    if sum(f["kind"] == main for f in files) != 1:
        raise _fail(f"{src / MANIFEST} lists no {EVENTS_DB if main == 'events' else PG_DUMP}; use another backup.")
    return manifest


def _verify(src: Path, files: list[dict[str, Any]]) -> None:
    """Every file's size and sha256, before anything is written."""
    total = sum(f["size"] for f in files)
    progress = Progress("verified", total, "MiB", per=1 << 20) if total >= BIG else None
    for f in files:
        path = src / f["path"]
        if not path.is_file():
            raise _fail(f"backup damaged: {f['path']} is missing; nothing was restored. Use another backup.")
        if (path.stat().st_size, _hash_file(path, progress)[1]) != (f["size"], f["sha256"]):
            raise _fail(f"backup damaged: {f['path']} does not match its sha256 in {MANIFEST}; nothing was "
                        "restored. Use another backup.")
    if progress:
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
        raise _fail("this is a PostgreSQL backup: set DATABASE_URL to the database to restore into.")
    if backend == "sqlite" and settings.database_url:
        raise _fail("this is an embedded (SQLite) backup: unset DATABASE_URL to restore into DATA_DIR; to move "
                    "to PostgreSQL, restore it embedded, then `ledgerllm events export` and `events import`.")
    names = _occupants(data_dir)
    found = [f"{data_dir} holds {', '.join(names[:4])}{' and more' if len(names) > 4 else ''}"] if names else []
    if backend == "postgres" and _pg_has_events(settings.database_url):
        found.insert(0, f"the database has events ({EVENTS_TABLE} has rows)")
    if found and not args.force:
        dumped = " (the database is dumped there first)" if backend == "postgres" else ""
        raise _fail(f"the target already holds data: {'; '.join(found)}. Stop the server, then run again with "
                    f"--force: the current contents move to {data_dir.name}.before-restore-<time> beside "
                    f"DATA_DIR{dumped}; nothing is deleted.")
    began = time.monotonic()
    _verify(src, files)
    if found:
        aside = _move_aside(data_dir)
        if backend == "postgres":
            _say("dumping the current database first...")
            _pg_dump(settings.database_url, aside / PG_DUMP)
        _say(f"moved the current data to {aside}")
    data_dir.mkdir(parents=True, exist_ok=True)
    if backend == "postgres":
        _say("running pg_restore...")
        env = _pg_env(settings.database_url)
        dbname = env["PGDATABASE"].replace("\\", "\\\\").replace("'", "\\'")  # a conninfo value, quoted
        _run_tool([_tool("pg_restore"), "--clean", "--if-exists", "--no-owner", "--single-transaction",
                   "--no-password", f"--dbname=dbname='{dbname}'", str(src / PG_DUMP)], env)
    order = {"blob": 0, "secret": 1, "read_model": 2, "events": 3}  # events.db last: its presence means done
    todo = sorted((f for f in files if f["kind"] in order), key=lambda f: order[f["kind"]])
    progress = Progress("restored", len(todo), "files") if len(todo) >= 100 else None
    for f in todo:
        target = data_dir / f["path"]
        if f["kind"] == "blob" and target.exists():
            continue
        mode = 0o600 if f["kind"] == "secret" else int(f.get("mode", "0600"), 8) & 0o777
        if _copy_file(src / f["path"], target, mode)[1] != f["sha256"]:
            raise _fail(f"{src / f['path']} changed while it was restored; run the restore again.")
        if progress:
            progress.add()
    if progress:
        progress.done()
    for directory in {data_dir, *((data_dir / f["path"]).parent for f in todo)}:
        fsync_dir(directory)
    _report_restored(settings, manifest, time.monotonic() - began)


def _report_restored(settings: Any, manifest: dict[str, Any], seconds: float) -> None:
    """The restored head, read models ahead of it (tables the backup did not have), the chain."""
    from application.ledger import Ledger
    from infrastructure.chain import verify_chain
    from infrastructure.eventstore import ledger_env

    positions = _read_model_positions(settings) if settings.database_url else {}
    ledger = Ledger(env=ledger_env(settings))
    try:
        head = ledger.recorder.max_notification_id() or 0
        chain = verify_chain(ledger.recorder)
    finally:
        ledger.close()
    if head != manifest.get("events_head"):
        _say(f"warning: the restored head is {head}, the manifest says {manifest.get('events_head')}")
    ahead = sorted(name for name, p in positions.items() if p > head)
    if ahead:
        _say(f"warning: read models that were not in the backup are ahead of the restored events: {', '.join(ahead)};"
             " drop their tables, they are rebuilt on start")
    print(f"restored {manifest['backend']} backup of {manifest.get('created_at')} into {settings.data_dir}: events "
          f"head {head} ({seconds:.1f} s); the read models catch up on the next start")
    if not chain.intact:
        first = chain.problems[0]
        raise _fail(f"restored, but the digest chain is broken: {chain.problem_count} problem(s), the first at "
                    f"position {first.position} ({first.kind}: {first.detail}). See `ledgerllm audit verify`.")
    _say(f"digest chain intact over {chain.checked} events; check it again any time with `ledgerllm audit verify`")


# events import -------------------------------------------------------------------------------
class BadLine(Exception):
    pass


def _aggregate_topic(cls: type) -> str:
    """The aggregate class a Created event starts: the class it is nested in."""
    from eventsourcing.domain import Aggregate
    from eventsourcing.utils import get_topic, resolve_topic

    module, _, qualname = get_topic(cls).partition(":")
    owner = resolve_topic(f"{module}:{qualname.rpartition('.')[0]}") if "." in qualname else None
    if not (isinstance(owner, type) and issubclass(owner, Aggregate)):
        raise BadLine(f"cannot tell which aggregate {qualname} creates")
    return get_topic(owner)


class EventReader:
    """Export lines back to domain events, checking each aggregate's versions run 1, 2, 3, ..."""

    def __init__(self) -> None:
        self.versions: dict[Any, int] = {}
        self.blobs: set[str] = set()

    def event(self, raw: bytes) -> Any:
        import dataclasses
        from uuid import UUID

        import msgspec
        from eventsourcing.domain import DomainEvent
        from eventsourcing.utils import TopicError, resolve_topic

        from domain.documents import Document

        try:
            record = msgspec.json.decode(raw)
        except msgspec.DecodeError as e:
            raise BadLine(f"not JSON ({e})") from None
        if not isinstance(record, dict) or not isinstance(record.get("payload"), dict):
            raise BadLine("not an `events export` record (an object with topic, aggregate_id, version, payload)")
        topic = record.get("topic")
        if not isinstance(topic, str) or not topic.startswith("domain."):
            raise BadLine(f"topic {topic!r} is not a ledgerllm event")
        try:
            cls = resolve_topic(topic)
            aggregate_id, version = UUID(str(record.get("aggregate_id"))), record.get("version")
        except (TopicError, ValueError) as e:
            raise BadLine(f"unknown topic or aggregate id ({e})") from None
        if not (isinstance(cls, type) and issubclass(cls, DomainEvent) and dataclasses.is_dataclass(cls)):
            raise BadLine(f"topic {topic} is not an event class")
        expected = self.versions.get(aggregate_id, 0) + 1
        if version != expected:
            raise BadLine(f"aggregate {aggregate_id} has version {version!r} where {expected} was due "
                          "(import a whole export, not a part of one)")
        given = {**record["payload"], "originator_id": aggregate_id, "originator_version": version}
        for name in ("timestamp", "actor_user_id", "actor_api_key_id", "correlation_id"):
            given[name] = record.get(name)
        fields = [f.name for f in dataclasses.fields(cls)]
        if "originator_topic" in fields:
            given["originator_topic"] = _aggregate_topic(cls)
        unknown = set(record["payload"]) - set(fields)
        if unknown:
            raise BadLine(f"{topic} has no field(s) {', '.join(sorted(unknown))}")
        try:  # in the class's field order, as the app builds its events: the stored bytes come out the same
            event = msgspec.convert({n: given[n] for n in fields if n in given}, type=cls, strict=False)
        except msgspec.ValidationError as e:
            raise BadLine(f"{topic}: {e}") from None
        self.versions[aggregate_id] = version
        if isinstance(event, Document.Uploaded):
            self.blobs.update((event.content_hash, event.text_hash))
        return event


def _read_model_positions(settings: Any) -> dict[str, int]:
    if settings.database_url:
        import psycopg

        with psycopg.connect(settings.database_url, connect_timeout=10) as conn:
            return _pg_positions(conn)[1]
    positions = {}
    for db in sorted(settings.data_dir.glob("*.db")):
        if db.name != EVENTS_DB:
            with closing(sqlite3.connect(db, timeout=30)) as conn:
                positions[db.stem] = _tracking(conn)
    return positions


def _lines(path: str) -> tuple[IO[bytes], bool]:
    if path == "-":
        return sys.stdin.buffer, False
    try:
        return open(path, "rb"), True
    except OSError as e:
        raise _fail(f"cannot read {path}: {e.strerror}") from None


def cmd_events_import(args: argparse.Namespace) -> None:
    from api.cli_events import Store
    from infrastructure.blobs import BlobStore

    stream, owned = _lines(args.file)
    store = Store()
    try:
        head = store.recorder.max_notification_id() or 0
        if head:
            raise _fail(f"the store is not empty (events up to position {head}); import only into an empty "
                        "store: a new DATA_DIR, or an empty database in DATABASE_URL.")
        stale = {name: p for name, p in _read_model_positions(store.settings).items() if p}
        if stale:
            raise _fail(f"the store has no events but read models at positions {stale}; remove them "
                        "(their .db files, or their tables) first.")
        reader, imported = EventReader(), 0
        progress = Progress("imported", unit="events")
        last = 0
        batch: list[Any] = []
        for number, raw in enumerate(stream, 1):
            if not raw.strip():
                continue
            try:
                batch.append(store.ledger.mapper.to_stored_event(reader.event(raw)))
            except BadLine as e:
                written = (f"The {imported} events before its batch were imported (start again with an empty "
                           "store)" if imported else "Nothing was imported")
                raise _fail(f"line {number}: {e}.\n{written}; fix the file, then import it into an empty "
                            "store.") from None
            if len(batch) == BATCH:
                last = _insert(store, batch, last, progress)
                imported += BATCH
        if batch:
            imported += len(batch)
            last = _insert(store, batch, last, progress)
        progress.done()
        _check_alone(store, last)
        seconds = time.monotonic() - progress.began
    finally:
        if owned:
            stream.close()
        store.close()
    missing = sum(1 for d in reader.blobs if not BlobStore(store.settings.data_dir / "blobs").exists(d))
    print(f"imported {imported} events in {seconds:.1f} s ({imported / max(seconds, 1e-6):,.0f} events/s); "
          "the read models catch up on the next start (see `ledgerllm projections status`)")
    if missing:
        _say(f"warning: {missing} of {len(reader.blobs)} document blobs are not under {store.settings.data_dir}/blobs;"
             " copy the source's DATA_DIR/blobs here before starting the server (the text is not in the export)")


def _check_alone(store: Any, last: int) -> None:
    if (store.recorder.max_notification_id() or 0) != last:
        raise _fail("something else wrote to the store during the import; stop every server and "
                    "`ledgerllm` command on it, then import into an empty store again.")


def _insert(store: Any, batch: list[Any], last: int, progress: Progress) -> int:
    """One transaction per batch, in file order; returns the position of its last event."""
    _check_alone(store, last)
    ids = store.recorder.insert_events(batch)
    progress.add(len(batch))
    batch.clear()
    return ids[-1]


# commands ------------------------------------------------------------------------------------
def _add_ops_commands(sub: Any) -> None:
    backup = sub.add_parser("backup", help="copy the store, blobs and secrets to a new DIR (safe while serving)")
    backup.add_argument("dir", metavar="DIR", help="a new or empty directory")
    backup.set_defaults(func=cmd_backup)
    restore = sub.add_parser("restore", help="check a backup, then put it in place (stop the server first)")
    restore.add_argument("dir", metavar="DIR", help="a directory made by `ledgerllm backup`")
    restore.add_argument("--force", action="store_true",
                         help="replace existing data; it moves to DATA_DIR/../<name>.before-restore-<time>")
    restore.set_defaults(func=cmd_restore)

"""Benchmark: the event log at 1,000,000 events, on SQLite and on PostgreSQL.

For each backend, in one run, on a fresh store (SQLite: a temp DATA_DIR; PostgreSQL: a
PostgreSQL 15 this script starts on loopback with harness/servers.py, the test suite's
throwaway cluster: trust auth, fsync=off, synchronous_commit=off):

1. Append. A seeded synthetic history (mostly `Chat.Recorded` with prompts of ~100-400 bytes and
   replies of ~300-900 bytes, a fifth of them in query mode with two sources; plus workspaces,
   threads with their slug claims, renames, deletions, history resets and settings updates) is
   made per batch as real domain event objects, mapped with `ledger.mapper.to_stored_event`
   (untimed), then appended with `ledger.recorder.insert_events(batch)`: the recorder the app
   gets from `ledger_env(settings)`, whatever class that is (it is printed). Only the
   insert_events calls are timed: events/s.
2. Baseline, interleaved batch by batch with the append (so drift in machine load hits both
   alike, and each batch is made once): the same rows (originator_id, originator_version, topic,
   state), already built, inserted with one plain `executemany` per batch, one transaction per
   batch, into a bare table with the same columns and primary key. SQLite: a separate file in
   the same directory, opened as eventsourcing opens its own (autocommit connection, explicit
   BEGIN, journal_mode=WAL, synchronous left at its default: checked equal to the store's).
   PostgreSQL: a bare table in the same database. Events/s, and the ratio store / baseline.
3. Rebuild of the chat-history read model (projections/chats.py) as `ledgerllm projections
   rebuild chats` does it, in a child process that does only that (this script with
   --rebuild-only), so the append phase's memory does not count: a scratch copy
   (`projections.rebuild.Scratch`: no journal or syncs on SQLite, unlogged tables on
   PostgreSQL) filled by `projections.rebuild.build` and completed by `SqlView.finish` (its
   secondary indexes and the resets and deletions left for the end), then swapped into the
   empty live view by `swap_in`, with the decoding worker processes the CLI would use
   (`projections/decode_pool.py`; --rebuild-workers sets how many, 0 none). Events/s over the whole log, fill and finish (the swap is
   reported apart), and that rate divided by the append rate of the same events in the same
   run. Also the child's peak RSS and its peak right after its imports (both VmHWM from
   /proc/self/status: an exec'd child's ru_maxrss starts at the parent's high-water mark on
   Linux, so it would report the bench parent); the difference is what the rebuild holds
   (it streams in the runner's batches). The child checks the live view's row counts after
   the swap against what the generator made.
4. CPU, whole machine (/proc/stat: every process, the PostgreSQL server's too): busy CPU
   microseconds per event during the store's inserts and during the rebuild, and how busy the
   machine's cores were while rebuilding. A rebuild that keeps every core busy is bound by
   the CPU it spends per event, not by waiting; its ceiling there is cores / CPU per event.

Aims: store / baseline >= 0.5; rebuild >= 20,000 events/s; rebuild / append >= 2. A summary
table ends the report, with the load average during each phase. Progress goes to stderr,
the report to stdout.

Run from the repo root:  .venv/bin/python bench/event_log.py [--events 1000000]
                         [--backend sqlite|postgres|both] [--batch 1000] [--seed 1]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import psycopg
from eventsourcing.utils import get_topic

from application.ledger import Ledger
from domain.chats import Chat, HistoryReset, chat_uuid
from domain.threads import Thread, ThreadSlug, thread_slug_uuid, thread_uuid
from domain.workspaces import (
    DEFAULT_PROMPT,
    DEFAULTS,
    WORKSPACE_DIRECTORY_ID,
    Workspace,
    WorkspaceDirectory,
    workspace_uuid,
)
from infrastructure.eventstore import ledger_env, open_view
from infrastructure.settings import load_settings
from projections.chats import ChatsProjection
from projections.decode_pool import worker_count
from projections.rebuild import Scratch, build, swap_in
from projections.runner import ProjectionRunner
from common import machine_facts

AIM_RATIO, AIM_REBUILD, AIM_REBUILD_RATIO = 0.5, 20_000, 2.0
PG_DB = "ledgerllm_bench"
USERS, KEYS, EMBEDS, SESSIONS = 50, 40, 5, 2_000
START = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
VOCABULARY = ("the a to of and in is it for on that with this you be can as are we our plan data model user team "
         "report budget release server client query answer summary document meeting project quarter customer "
         "issue change review draft policy risk cost time week month product feature test deploy support "
         "invoice contract schedule account access key thread workspace history source context reply please "
         "explain compare list write short long next last first better faster why how what when where which")
WORDS = VOCABULARY.split()


def progress(text: str) -> None:
    sys.stdout.flush()  # keep stdout and stderr in order when both go to one file
    print(f"[event_log] {text}", file=sys.stderr, flush=True)


# --- the synthetic history -----------------------------------------------------------------------


def _text(rng: random.Random, low: int, high: int) -> str:
    size, words = rng.randint(low, high), []
    length = 0
    while length < size:
        word = rng.choice(WORDS)
        words.append(word)
        length += len(word) + 1
    text = " ".join(words)
    return text[0].upper() + text[1:] + "."


class History:
    """A seeded, reproducible event history, made as it goes (nothing is kept but ids and counts).

    After 20 workspaces, each step is: ~96.4% a chat exchange (40% in a thread, 30% with an API
    session, 1% through an embed; 20% query mode with two sources; 2% failed and 1% refused, not
    included), 2% a new thread (Thread.Created + ThreadSlug.Claimed), 0.5% a thread rename, 0.03%
    a thread deletion, 0.1% a scoped history reset, 1% a workspace settings update (which the
    chats read model ignores), a new workspace every ~50,000 steps and a workspace deletion
    (with its chats and threads) every ~200,000. `expected_chats` and `expected_threads` are the
    rows the read model must hold afterwards."""

    def __init__(self, total: int, seed: int) -> None:
        self.total = total
        self.rng = random.Random(seed)
        self.prompts = [_text(self.rng, 100, 400) for _ in range(500)]
        self.replies = [_text(self.rng, 300, 900) for _ in range(500)]
        self.sources = [{"id": str(self._uuid()), "url": f"file://bench/doc-{i}.txt", "title": f"doc-{i}.txt",
                         "docAuthor": "Unknown", "description": "Unknown",
                         "docSource": "a text file uploaded by the user.",
                         "chunkSource": "", "published": "1/5/2026, 8:00:00 AM", "wordCount": 800 + i,
                         "token_count_estimate": 1100 + i, "text": _text(self.rng, 150, 300),
                         "score": round(0.3 + 0.6 * self.rng.random(), 6)} for i in range(200)]
        self.now = START
        self.directory_version = 0
        self.chat_id = self.thread_id = self.workspace_id = 0
        self.workspaces: list[int] = []  # the live ones
        self.workspace_versions: dict[int, int] = {}
        self.threads: dict[int, list[Any]] = {}  # thread id -> [workspace, user, version]
        self.threads_in: dict[int, list[int]] = {}  # workspace -> its live thread ids
        self.chats_in: dict[int, dict[int, int]] = {}  # workspace -> thread key (-1: none) -> live chats

    @property
    def expected_chats(self) -> int:
        return sum(sum(counts.values()) for counts in self.chats_in.values())

    @property
    def expected_threads(self) -> int:
        return len(self.threads)

    def _uuid(self) -> UUID:
        return UUID(int=self.rng.getrandbits(128), version=4)

    def _stamp(self, user: int) -> dict[str, Any]:
        self.now += timedelta(milliseconds=self.rng.randint(20, 4000))
        key = self.rng.randint(1, KEYS) if self.rng.random() < 0.7 else None
        return {"timestamp": self.now, "actor_user_id": user, "actor_api_key_id": key,
                "correlation_id": str(self._uuid())}

    def batches(self, size: int) -> Iterator[list[Any]]:
        """Exactly `total` events, in lists of `size` (the last may be shorter)."""
        events = itertools.islice(self._stream(), self.total)
        while batch := list(itertools.islice(events, size)):
            yield batch

    def _stream(self) -> Iterator[Any]:
        rng = self.rng
        self.directory_version = 1
        yield WorkspaceDirectory.Opened(originator_id=WORKSPACE_DIRECTORY_ID, originator_version=1,
                                        originator_topic=get_topic(WorkspaceDirectory), **self._stamp(1))
        for _ in range(20):
            yield from self._new_workspace()
        while True:
            r = rng.random()
            if r < 0.02:
                yield from self._new_thread()
            elif r < 0.025:
                yield from self._rename_thread()
            elif r < 0.0253:
                yield from self._delete_thread()
            elif r < 0.0263:
                yield from self._reset()
            elif r < 0.0363:
                yield from self._update_workspace()
            elif r < 0.03632:
                yield from self._new_workspace()
            elif r < 0.036325 and len(self.workspaces) > 10:
                yield from self._delete_workspace()
            else:
                yield self._chat()

    def _chat(self) -> Chat.Recorded:
        rng = self.rng
        self.chat_id += 1
        workspace = rng.choice(self.workspaces)
        thread_id, user = None, rng.randint(1, USERS)
        threads = self.threads_in[workspace]
        if threads and rng.random() < 0.4:
            thread_id = rng.choice(threads)
            user = self.threads[thread_id][1]
        session = f"session-{rng.randint(1, SESSIONS)}" if rng.random() < 0.3 else None
        embed = None
        if rng.random() < 0.01:
            embed, thread_id = rng.randint(1, EMBEDS), None
            session = session or f"embed-session-{rng.randint(1, SESSIONS)}"
        mode = "query" if rng.random() < 0.2 else "chat"
        status = rng.choices(("ok", "failed", "refused"), (97, 2, 1))[0]
        key = -1 if thread_id is None else thread_id
        self.chats_in[workspace][key] = self.chats_in[workspace].get(key, 0) + 1
        return Chat.Recorded(
            originator_id=chat_uuid(self.chat_id), originator_version=1, originator_topic=get_topic(Chat),
            **self._stamp(user), chat_id=self.chat_id, workspace_id=workspace, user_id=user, thread_id=thread_id,
            session_id=session, embed_id=embed, prompt=f"{rng.choice(self.prompts)} ({self.chat_id})",
            response="" if status == "failed" else rng.choice(self.replies), mode=mode,
            sources=rng.sample(self.sources, 2) if mode == "query" else [], attachments=[],
            model="openai/gpt-4o-mini", prompt_tokens=rng.randint(40, 3000), completion_tokens=rng.randint(20, 600),
            latency_ms=round(rng.uniform(200, 9000), 3), include=status == "ok", status=status,
            error="Connection error." if status == "failed" else None,
        )

    def _new_workspace(self) -> Iterator[Any]:
        self.workspace_id += 1
        ws, user = self.workspace_id, self.rng.randint(1, 3)
        slug = f"workspace-{ws}"
        self.workspaces.append(ws)
        self.workspace_versions[ws] = 1
        self.threads_in[ws], self.chats_in[ws] = [], {}
        yield Workspace.Created(originator_id=workspace_uuid(ws), originator_version=1,
                                originator_topic=get_topic(Workspace), **self._stamp(user), workspace_id=ws,
                                name=f"Workspace {ws}", slug=slug,
                                settings={**DEFAULTS, "openAiPrompt": DEFAULT_PROMPT})
        self.directory_version += 1
        yield WorkspaceDirectory.Listed(originator_id=WORKSPACE_DIRECTORY_ID, originator_version=self.directory_version,
                                        **self._stamp(user), workspace_id=ws, slug=slug)

    def _update_workspace(self) -> Iterator[Any]:
        ws = self.rng.choice(self.workspaces)
        self.workspace_versions[ws] += 1
        yield Workspace.Updated(originator_id=workspace_uuid(ws), originator_version=self.workspace_versions[ws],
                                **self._stamp(1), name=None,
                                changes={"openAiTemp": round(self.rng.random(), 2), "openAiHistory": 20})

    def _delete_workspace(self) -> Iterator[Any]:
        ws = self.rng.choice(self.workspaces)
        self.workspaces.remove(ws)
        for thread_id in self.threads_in.pop(ws):
            del self.threads[thread_id]
        del self.chats_in[ws]
        yield Workspace.Deleted(originator_id=workspace_uuid(ws), originator_version=self.workspace_versions[ws] + 1,
                                **self._stamp(1),
                                workspace_id=ws)
        self.directory_version += 1
        yield WorkspaceDirectory.Unlisted(originator_id=WORKSPACE_DIRECTORY_ID,
                                          originator_version=self.directory_version, **self._stamp(1),
                                          slug=f"workspace-{ws}")

    def _new_thread(self) -> Iterator[Any]:
        self.thread_id += 1
        tid, ws, user = self.thread_id, self.rng.choice(self.workspaces), self.rng.randint(1, USERS)
        slug = str(self._uuid())
        self.threads[tid] = [ws, user, 1]
        self.threads_in[ws].append(tid)
        yield Thread.Created(originator_id=thread_uuid(tid), originator_version=1, originator_topic=get_topic(Thread),
                             **self._stamp(user), thread_id=tid, workspace_id=ws, user_id=user,
                             name=f"Thread {tid}", slug=slug)
        yield ThreadSlug.Claimed(originator_id=thread_slug_uuid(slug), originator_version=1,
                                 originator_topic=get_topic(ThreadSlug), **self._stamp(user), slug=slug, thread_id=tid)

    def _some_thread(self) -> int | None:
        ws = self.rng.choice(self.workspaces)
        return self.rng.choice(self.threads_in[ws]) if self.threads_in[ws] else None

    def _rename_thread(self) -> Iterator[Any]:
        tid = self._some_thread()
        if tid is not None:
            entry = self.threads[tid]
            entry[2] += 1
            yield Thread.Renamed(originator_id=thread_uuid(tid), originator_version=entry[2], **self._stamp(entry[1]),
                                 name=_text(self.rng, 10, 40))

    def _delete_thread(self) -> Iterator[Any]:
        tid = self._some_thread()
        if tid is not None:
            ws, user, version = self.threads.pop(tid)
            self.threads_in[ws].remove(tid)
            self.chats_in[ws].pop(tid, None)
            yield Thread.Deleted(originator_id=thread_uuid(tid), originator_version=version + 1, **self._stamp(user))

    def _reset(self) -> Iterator[Any]:
        ws = self.rng.choice(self.workspaces)
        tid = self.rng.choice(self.threads_in[ws]) if self.threads_in[ws] and self.rng.random() < 0.5 else None
        user = self.threads[tid][1] if tid else self.rng.randint(1, USERS)
        session = f"session-{self.rng.randint(1, SESSIONS)}" if self.rng.random() < 0.3 else None
        yield HistoryReset.Recorded(originator_id=self._uuid(), originator_version=1,
                                    originator_topic=get_topic(HistoryReset), **self._stamp(user), workspace_id=ws,
                                    user_id=user, thread_id=tid, session_id=session, embed_id=None)


# --- the baseline: plain executemany into a bare table ---------------------------------------------


class SQLiteBaseline:
    """A file beside the store's, opened as eventsourcing.sqlite opens its own."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("CREATE TABLE baseline_events (originator_id TEXT, originator_version INTEGER, "
                          "topic TEXT, state BLOB, PRIMARY KEY (originator_id, originator_version))")

    @staticmethod
    def rows(stored: list[Any]) -> list[tuple[Any, ...]]:
        return [(s.originator_id.hex, s.originator_version, s.topic, s.state) for s in stored]

    def insert(self, rows: list[tuple[Any, ...]]) -> None:
        self.conn.execute("BEGIN")
        self.conn.executemany("INSERT INTO baseline_events VALUES (?,?,?,?)", rows)
        self.conn.execute("COMMIT")

    def pragmas(self) -> tuple[str, int]:
        return (self.conn.execute("PRAGMA journal_mode").fetchone()[0],
                self.conn.execute("PRAGMA synchronous").fetchone()[0])

    def size(self) -> int:
        return sum(p.stat().st_size for p in self.path.parent.glob(self.path.name + "*"))

    def close(self) -> None:
        self.conn.close()


class PostgresBaseline:
    def __init__(self, url: str) -> None:
        self.conn = psycopg.connect(url)
        with self.conn.transaction():
            self.conn.execute("CREATE TABLE baseline_events (originator_id uuid NOT NULL, originator_version bigint "
                              "NOT NULL, topic text, state bytea, PRIMARY KEY (originator_id, originator_version))")

    @staticmethod
    def rows(stored: list[Any]) -> list[tuple[Any, ...]]:
        return [(s.originator_id, s.originator_version, s.topic, s.state) for s in stored]

    def insert(self, rows: list[tuple[Any, ...]]) -> None:
        with self.conn.transaction(), self.conn.cursor() as cursor:
            cursor.executemany("INSERT INTO baseline_events VALUES (%s, %s, %s, %s)", rows)

    def size(self) -> int:
        with self.conn.transaction():
            return self.conn.execute("SELECT pg_total_relation_size('baseline_events')").fetchone()[0]

    def close(self) -> None:
        self.conn.close()


def store_pragmas(ledger: Ledger) -> tuple[str, int]:
    with ledger.recorder.datastore.transaction(commit=False) as cursor:  # type: ignore[attr-defined]
        cursor.execute("PRAGMA journal_mode")
        mode = cursor.fetchone()[0]
        cursor.execute("PRAGMA synchronous")
        return mode, cursor.fetchone()[0]


def store_size(ledger: Ledger, settings: Any) -> int:
    if settings.database_url:
        with psycopg.connect(settings.database_url) as conn:
            tables = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                                  "AND tablename <> 'baseline_events'").fetchall()
            return sum(conn.execute("SELECT pg_total_relation_size(%s)", (t[0],)).fetchone()[0] for t in tables)
    return sum(p.stat().st_size for p in settings.data_dir.glob("events.db*"))


# --- phases --------------------------------------------------------------------------------------


def append(backend: str, ledger: Ledger, baseline: SQLiteBaseline | PostgresBaseline, args: argparse.Namespace,
           history: History) -> dict[str, Any]:
    """Both appends, batch by batch, alternating which goes first; only the inserts are timed."""
    store_s = base_s = make_s = store_cpu = machine_cpu = 0.0
    done = state_bytes = 0
    shown = started = time.perf_counter()
    to_stored = ledger.mapper.to_stored_event
    batches = history.batches(args.batch)
    for n in itertools.count():
        t = time.perf_counter()
        batch = next(batches, None)
        if batch is None:
            break
        stored = [to_stored(event) for event in batch]
        rows = baseline.rows(stored)
        make_s += time.perf_counter() - t
        for first in ((True, False) if n % 2 == 0 else (False, True)):
            t, cpu, busy = time.perf_counter(), time.process_time(), machine_busy()
            if first:
                ledger.recorder.insert_events(stored)
                store_s += time.perf_counter() - t
                store_cpu += time.process_time() - cpu
                machine_cpu += machine_busy() - busy
            else:
                baseline.insert(rows)
                base_s += time.perf_counter() - t
        done += len(stored)
        state_bytes += sum(len(s.state) for s in stored)
        if time.perf_counter() - shown > 5:
            shown = time.perf_counter()
            eta = (shown - started) / done * (args.events - done)
            progress(f"{backend} append: {done:,}/{args.events:,} events; store {done / store_s:,.0f}/s, "
                     f"baseline {done / base_s:,.0f}/s; ETA {eta:.0f} s")
    return {"events": done, "store_s": store_s, "store_cpu_s": store_cpu, "machine_cpu_s": machine_cpu,
            "baseline_s": base_s, "make_s": make_s,
            "wall_s": time.perf_counter() - started, "state_bytes": state_bytes}


def rebuild_only(args: argparse.Namespace) -> None:
    """The child: rebuild the chats read model as `ledgerllm projections rebuild chats` does (a
    scratch copy filled and finished, then swapped into the empty live view); print one JSON line."""
    rss_imports = proc_status_kb("VmHWM")
    settings = load_settings({}, data_dir=Path(args.data_dir), database_url=args.database_url)
    ledger = Ledger(env=ledger_env(settings))
    live = ProjectionRunner(ledger, ChatsProjection(open_view(settings, "chats", ChatsProjection.views())))
    if live.position() != 0:
        sys.exit("the chats view is not empty")
    scratch = Scratch(settings, tag=f"bench-{os.getpid()}")
    projection = ChatsProjection(scratch.open(ChatsProjection))
    head = ledger.recorder.max_notification_id() or 0
    rss_ready = proc_status_kb("VmHWM")
    done, shown = 0, time.perf_counter()
    started, cpu_started, busy_started = shown, time.process_time() + children_cpu(), machine_busy()

    def step(n: int) -> None:
        nonlocal done, shown
        done += n
        if time.perf_counter() - shown > 5:
            shown = time.perf_counter()
            rate = done / (shown - started)
            progress(f"{args.backend} chats rebuild: {done:,}/{head:,} events, {rate:,.0f}/s; "
                     f"ETA {(head - done) / rate:.0f} s")

    workers = worker_count(ledger, head, args.rebuild_workers)
    runner = build(ledger, projection, live.view, progress=step, workers=workers)
    filled = time.perf_counter()
    runner.view.finish()  # the indexes and the statements left for the end: part of the rebuild
    seconds, cpu_s = time.perf_counter() - started, time.process_time() + children_cpu() - cpu_started
    machine_cpu_s = machine_busy() - busy_started
    finish_s = time.perf_counter() - filled
    rss_peak = proc_status_kb("VmHWM")
    swap_started = time.perf_counter()
    position = swap_in(live, runner)
    swap_s = time.perf_counter() - swap_started
    with live.view.read() as tx:  # type: ignore[attr-defined]
        chats = tx.scalar("SELECT COUNT(*) FROM chats")
        included = tx.scalar("SELECT COUNT(*) FROM chats WHERE include = 1")
        threads = tx.scalar("SELECT COUNT(*) FROM threads")
    for view in (runner.view, live.view):
        view.datastore.close()
    scratch.drop()
    ledger.close()
    print(json.dumps({"head": head, "position": position, "events": done, "seconds": seconds, "cpu_s": cpu_s,
                      "machine_cpu_s": machine_cpu_s,
                      "finish_s": finish_s,
                      "swap_s": swap_s, "batch": runner.batch, "workers": workers, "chats": chats,
                      "included": included, "threads": threads, "rss_imports_kb": rss_imports,
                      "rss_ready_kb": rss_ready, "rss_peak_kb": rss_peak, "rss_end_kb": proc_status_kb("VmRSS"),
                      "ru_maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))


def machine_busy() -> float:
    """CPU seconds the whole machine has spent busy since boot (/proc/stat: every process,
    the PostgreSQL server's too; 0 where there is no /proc). Its tick is 10 ms, so it is read
    around spans of many events and summed."""
    try:
        with open("/proc/stat") as f:
            ticks = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return 0.0
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle and iowait
    # user, nice, system, irq, softirq; not steal (the hypervisor's, not ours) nor guest (in user)
    return (sum(ticks[:7]) - idle) / os.sysconf("SC_CLK_TCK")


def children_cpu() -> float:
    """CPU seconds of this process's finished children: the rebuild's decoding workers, once
    `build` has shut them down."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def proc_status_kb(field: str) -> int:
    """VmHWM (peak RSS of this process image) or VmRSS, in KiB. Not ru_maxrss: on Linux an exec'd
    child's ru_maxrss starts at its parent's high-water mark (exec keeps the old image's), so it
    would show the bench parent's memory, not the rebuild's."""
    status = Path("/proc/self/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith(field + ":")))


def rebuild(backend: str, settings: Any, workers: int | None) -> dict[str, Any]:
    command = [sys.executable, str(Path(__file__).resolve()), "--rebuild-only", "--backend", backend,
               "--data-dir", str(settings.data_dir)]
    if workers is not None:
        command += ["--rebuild-workers", str(workers)]
    if settings.database_url:
        command += ["--database-url", settings.database_url]
    result = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"rebuild child failed with exit code {result.returncode}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def run_backend(backend: str, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    server = None
    try:
        url = None
        if backend == "postgres":
            from harness.servers import (
                PostgresServer,  # the test suite's throwaway cluster
            )

            progress("starting PostgreSQL")
            server = PostgresServer()
            server.start()
            url = server.create_database(PG_DB)
        data_dir = tmp / backend
        settings = load_settings({}, data_dir=data_dir, database_url=url)
        ledger = Ledger(env=ledger_env(settings))
        recorder = type(ledger.recorder)
        chosen = ", ".join(f"{k}={v}" for k, v in ledger_env(settings).items() if "RECORDER" in k or "PERSISTENCE" in k)
        print(f"{backend}: recorder {recorder.__module__}.{recorder.__qualname__} (ledger_env: {chosen}); "
              f"{'database ' + url if url else 'store ' + str(data_dir / 'events.db')}", flush=True)
        baseline: SQLiteBaseline | PostgresBaseline
        if url:
            baseline = PostgresBaseline(url)
            print(f"{backend}: baseline table baseline_events in the same database; server runs with the test "
                  f"suite's options (fsync=off, synchronous_commit=off, full_page_writes=off)", flush=True)
        else:
            baseline = SQLiteBaseline(data_dir / "baseline.db")
            ours, theirs = baseline.pragmas(), store_pragmas(ledger)
            if ours != theirs:
                raise RuntimeError(f"baseline pragmas {ours} differ from the store's {theirs}")
            print(f"{backend}: baseline file {baseline.path.name} beside events.db; both journal_mode={ours[0]}, "
                  f"synchronous={ours[1]} ({['OFF', 'NORMAL', 'FULL', 'EXTRA'][ours[1]]})", flush=True)
        history = History(args.events, args.seed)
        load0 = os.getloadavg()[0]
        result = append(backend, ledger, baseline, args, history)
        result.update(recorder=f"{recorder.__module__}.{recorder.__qualname__}",
                      load_append=(load0, os.getloadavg()[0]),
                      store_bytes=store_size(ledger, settings), baseline_bytes=baseline.size(),
                      expected_chats=history.expected_chats, expected_threads=history.expected_threads)
        head = ledger.recorder.max_notification_id()
        if head != result["events"]:
            raise RuntimeError(f"the store's head is {head}, but {result['events']} events were appended")
        baseline.close()
        ledger.close()
        print(f"{backend}: appended {result['events']:,} events ({result['state_bytes'] / result['events']:,.0f} B "
              f"of state each on average) in batches of {args.batch:,}: store {result['store_s']:.1f} s, baseline "
              f"{result['baseline_s']:.1f} s, making the events (untimed) {result['make_s']:.1f} s; on disk: "
              f"store {result['store_bytes'] / 2**20:,.0f} MiB, baseline {result['baseline_bytes'] / 2**20:,.0f} MiB",
              flush=True)
        progress(f"{backend}: rebuilding the chats read model in a child process")
        load0 = os.getloadavg()[0]
        child = rebuild(backend, settings, args.rebuild_workers)
        result.update(rebuild=child, load_rebuild=(load0, os.getloadavg()[0]))
        if child["position"] != head or child["events"] != head:
            raise RuntimeError(f"the rebuild reached {child['position']} after {child['events']} events, not {head}")
        if (child["chats"], child["threads"]) != (history.expected_chats, history.expected_threads):
            raise RuntimeError(f"the view holds {child['chats']} chats and {child['threads']} threads, the history "
                               f"made {history.expected_chats} and {history.expected_threads}")
        print(f"{backend}: chats rebuild of {child['events']:,} events ({child['batch']} per runner batch, "
              f"one transaction each; {child['workers']} decoding worker process(es) beside it) into a scratch copy in {child['seconds']:.1f} s (of which "
              f"{child['finish_s']:.1f} s its indexes and deferred statements), swapped into the empty live view "
              f"in {child['swap_s']:.1f} s -> {child['chats']:,} chat rows ({child['included']:,} included), "
              f"{child['threads']:,} threads (both as the generator expects)", flush=True)
        return result
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(tmp / backend, ignore_errors=True)


# --- report --------------------------------------------------------------------------------------



def mib(kb: int) -> float:
    return kb / 1024


def met_or_missed(met: bool) -> str:
    return "met" if met else "MISSED"


def summary(results: dict[str, dict[str, Any]], args: argparse.Namespace) -> None:
    print()
    print(f"summary: {args.events:,} events, batches of {args.batch:,}, seed {args.seed}")
    print(f"{'backend':<9}{'figure':<44}{'value':>14}   {'aim':<12}{'':<6}")
    for backend, r in results.items():
        store, base = r["events"] / r["store_s"], r["events"] / r["baseline_s"]
        child = r["rebuild"]
        rate = child["events"] / child["seconds"]
        rows = [
            ("append through the store (events/s)", f"{store:,.0f}", "", ""),
            ("baseline executemany (events/s)", f"{base:,.0f}", "", ""),
            ("store / baseline", f"{store / base:.2f}", f">= {AIM_RATIO}", met_or_missed(store / base >= AIM_RATIO)),
            ("chats rebuild (events/s)", f"{rate:,.0f}", f">= {AIM_REBUILD:,}", met_or_missed(rate >= AIM_REBUILD)),
            ("chats rebuild / append", f"{rate / store:.2f}", f">= {AIM_REBUILD_RATIO}",
             met_or_missed(rate / store >= AIM_REBUILD_RATIO)),
            ("  per CPU second (append: the bench; rebuild: its processes)", f"{r['store_cpu_s'] / child['cpu_s']:.2f}", "", ""),
            ("  machine CPU per event, append / rebuild (us)",
             f"{r['machine_cpu_s'] / r['events'] * 1e6:,.0f} / {child['machine_cpu_s'] / child['events'] * 1e6:,.0f}",
             "", ""),
            (f"  machine busy while rebuilding (% of {os.cpu_count()} cores)",
             f"{100 * child['machine_cpu_s'] / child['seconds'] / (os.cpu_count() or 1):.0f}", "", ""),
            ("  swap into the live view (s)", f"{child['swap_s']:.1f}", "", ""),
            ("rebuild child RSS after imports (MiB, VmHWM)", f"{mib(child['rss_imports_kb']):,.1f}", "", ""),
            ("rebuild child peak RSS (MiB, VmHWM)", f"{mib(child['rss_peak_kb']):,.1f}", "", ""),
            ("  peak - after imports (MiB)", f"{mib(child['rss_peak_kb'] - child['rss_imports_kb']):,.1f}", "", ""),
            ("  stored event state, for scale (MiB)", f"{r['state_bytes'] / 2**20:,.0f}", "", ""),
            ("load average append / rebuild (1 min)",
             f"{max(r['load_append']):.1f} / {max(r['load_rebuild']):.1f}", "", ""),
        ]
        for figure, value, aim, verdict in rows:
            print(f"{backend:<9}{figure:<44}{value:>14}   {aim:<12}{verdict:<6}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000, help="events to append per backend")
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--batch", type=int, default=1000, help="events per insert_events call (and per baseline "
                        "transaction)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the synthetic history")
    parser.add_argument("--rebuild-workers", type=int, default=None, help="processes decoding events for the "
                        "rebuild (REBUILD_WORKERS; default: as the CLI chooses, one per core but one)")
    parser.add_argument("--rebuild-only", action="store_true", help=argparse.SUPPRESS)  # the rebuild child
    parser.add_argument("--data-dir", help=argparse.SUPPRESS)
    parser.add_argument("--database-url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rebuild_only:
        rebuild_only(args)
        return
    if args.events < 100 or args.batch < 1:
        parser.error("--events must be at least 100 and --batch at least 1")
    # SIGTERM -> SystemExit, so the finally blocks also run when we are killed politely.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    run_started = time.perf_counter()
    backends = ("sqlite", "postgres") if args.backend == "both" else (args.backend,)
    tmp = Path(tempfile.mkdtemp(prefix="ledgerllm-eventlog-"))
    print(machine_facts(f"sqlite={sqlite3.sqlite_version}  psycopg={psycopg.__version__}"))
    print(f"load average at start: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    results: dict[str, dict[str, Any]] = {}
    try:
        for backend in backends:
            t = time.perf_counter()
            results[backend] = run_backend(backend, args, tmp)
            print(f"{backend}: phase took {time.perf_counter() - t:.0f} s", flush=True)
        summary(results, args)
        print(f"\nload average at end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
        print(f"total run time: {time.perf_counter() - run_started:.0f} s")
        extra = "".join(f" --{name.replace('_', '-')} {getattr(args, name)}" for name, default in
                        (("events", 1_000_000), ("batch", 1000), ("seed", 1), ("rebuild_workers", None))
                        if getattr(args, name) != default)
        print(f"re-run: .venv/bin/python bench/event_log.py --backend {args.backend}{extra}")
    except RuntimeError as err:
        sys.exit(f"benchmark failed: {err}")
    except KeyboardInterrupt:
        sys.exit("interrupted")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

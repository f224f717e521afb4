"""Rebuilds into scratch copies on real SQLite and PostgreSQL: a copy filled without
durability, with its secondary indexes made at the end and its resets and deletions run then,
equals the live view applied event by event, row by row; and a batch's queued inserts are seen
by every later statement, in order, as one-by-one inserts would be."""

from __future__ import annotations

import random
import threading
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg
from eventsourcing.utils import get_topic

from application.ledger import Ledger
from domain.chats import Chat, HistoryReset, chat_uuid
from domain.threads import Thread, thread_uuid
from domain.workspaces import Workspace, workspace_uuid
from infrastructure.eventstore import ledger_env, open_view
from projections.base import SqlProjection, Tx, handles
from projections.chats import ChatsProjection
from projections.rebuild import Scratch, build, compare, swap_in
from projections.runner import ProjectionRunner
from tests.support.app import Backend

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


class History:
    """Chats in threads and sessions, with scoped resets, renames and deletions of threads
    and of a workspace, and chats recorded into a thread after it was deleted (a race the
    domain allows: the exchange started before): seeded, so both views see the same events."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.moment = T0
        self.chat = self.thread = 0
        self.threads: dict[int, list[Any]] = {}  # thread id -> [workspace, user, version, deleted]
        self.workspaces = [1, 2, 3]

    def _stamp(self) -> dict[str, Any]:
        self.moment += timedelta(milliseconds=self.rng.randint(1, 3000))
        return {"timestamp": self.moment, "actor_user_id": 1, "actor_api_key_id": self.rng.choice([None, 2]),
                "correlation_id": f"c{self.rng.getrandbits(32)}"}

    def events(self, count: int) -> Iterator[Any]:
        for ws in self.workspaces:
            yield Workspace.Created(originator_id=workspace_uuid(ws), originator_version=1,
                                    originator_topic=get_topic(Workspace), **self._stamp(), workspace_id=ws,
                                    name=f"W{ws}", slug=f"w{ws}", settings={})
        for n in range(count):
            r = self.rng.random()
            if n == count // 2:  # chats are still recorded into it afterwards: they stay
                yield Workspace.Deleted(originator_id=workspace_uuid(3), originator_version=2, **self._stamp(),
                                        workspace_id=3)
            elif r < 0.08 or not self.threads:
                yield self._new_thread()
            elif r < 0.12:
                yield self._reset()
            elif r < 0.14:
                yield self._thread_event(Thread.Renamed, name=f"renamed {n}")
            elif r < 0.16:
                yield self._thread_event(Thread.Deleted)
            else:
                yield self._chat()

    def _new_thread(self) -> Any:
        self.thread += 1
        ws, user = self.rng.choice(self.workspaces), self.rng.randint(1, 3)
        self.threads[self.thread] = [ws, user, 1, False]
        return Thread.Created(originator_id=thread_uuid(self.thread), originator_version=1,
                              originator_topic=get_topic(Thread), **self._stamp(), thread_id=self.thread,
                              workspace_id=ws, user_id=user, name=f"T{self.thread}", slug=f"t-{self.thread}")

    def _thread_event(self, cls: type, **fields: Any) -> Any:
        tid = self.rng.choice([t for t, v in self.threads.items() if not v[3]] or [1])
        entry = self.threads[tid]
        entry[2] += 1
        entry[3] = entry[3] or cls is Thread.Deleted
        return cls(originator_id=thread_uuid(tid), originator_version=entry[2], **self._stamp(), **fields)

    def _scope(self) -> dict[str, Any]:
        """A partition: mostly the default thread (most rows share it), sometimes a thread
        (deleted ones too), a session, or an embed."""
        tid = self.rng.choice(list(self.threads)) if self.rng.random() < 0.4 else None
        ws, user = (self.threads[tid][:2] if tid else (self.rng.choice(self.workspaces), self.rng.randint(1, 3)))
        embed = self.rng.choice([1, 2]) if tid is None and self.rng.random() < 0.1 else None
        session = f"s{self.rng.randint(1, 3)}" if embed or self.rng.random() < 0.3 else None
        return {"workspace_id": ws, "user_id": user, "thread_id": tid, "session_id": session, "embed_id": embed}

    def _chat(self) -> Any:
        self.chat += 1
        status = self.rng.choice(["ok", "ok", "ok", "failed"])
        return Chat.Recorded(
            originator_id=chat_uuid(self.chat), originator_version=1, originator_topic=get_topic(Chat),
            **self._stamp(), chat_id=self.chat, **self._scope(), prompt=f"prompt {self.chat}",
            response=f"reply {self.chat}", mode=self.rng.choice(["chat", "query"]),
            sources=[{"title": "doc", "score": self.rng.random()}] if self.rng.random() < 0.3 else [],
            attachments=[], model="m", prompt_tokens=3, completion_tokens=4, latency_ms=1.5,
            include=status == "ok", status=status, error=None if status == "ok" else "boom")

    def _reset(self) -> Any:
        return HistoryReset.Recorded(originator_id=UUID(int=self.rng.getrandbits(128), version=4),
                                     originator_version=1, originator_topic=get_topic(HistoryReset),
                                     **self._stamp(), **self._scope())


@contextmanager
def ledger_of(backend: Backend) -> Iterator[Ledger]:
    ledger = Ledger(env=ledger_env(backend.settings()))
    try:
        yield ledger
    finally:
        ledger.close()


def append(ledger: Ledger, events: list[Any]) -> None:
    for start in range(0, len(events), 50):
        ledger.recorder.insert_events([ledger.mapper.to_stored_event(e) for e in events[start:start + 50]])


def scratch_properties(view: Any) -> dict[str, Any]:
    """How the scratch copy is stored, and which secondary indexes its chats table has."""
    if view.postgres:
        with view.read() as tx:
            return {"persistence": tx.scalar("SELECT relpersistence FROM pg_class WHERE oid = 'chats'::regclass"),
                    "indexes": {r["indexname"] for r in tx.all(
                        "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() AND tablename = 'chats'"
                        " AND indexname <> 'chats_pkey'")}}
    with sqlite3.connect(view.datastore.pool.db_name) as conn:
        return {"indexes": {r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'chats' AND sql IS NOT NULL")}}


def test_a_chats_rebuild_into_a_scratch_copy_equals_the_live_view_row_by_row(backend: Backend) -> None:
    settings = backend.settings()
    history = History(seed=7)
    events = list(history.events(1500))
    deleted_at = 1 + next(i for i, e in enumerate(events) if isinstance(e, Workspace.Deleted))  # a fresh store
    with ledger_of(backend) as ledger:
        append(ledger, events)
        live = ProjectionRunner(ledger, ChatsProjection(open_view(settings, "chats", ChatsProjection.views())))
        live.batch = 7  # event by event, nearly: every reset and deletion runs at once, live
        live.catch_up()
        scratch = Scratch(settings, tag="bulk-test")
        try:
            view = scratch.open(ChatsProjection)
            if view.postgres:
                assert scratch_properties(view)["persistence"] == "u"  # unlogged: no WAL
            else:
                with view.datastore.transaction(commit=False) as cursor:
                    cursor.execute("PRAGMA journal_mode")
                    assert cursor.fetchone()[0] == "off"
            assert scratch_properties(view)["indexes"] == set()  # filled without secondary indexes
            rebuilt = build(ledger, ChatsProjection(view), live.view)
            with view.read() as tx:  # the resets and deletions wait for the end
                assert tx.scalar("SELECT COUNT(*) FROM chats") > len(live_rows(live)["chats"])
            result = compare(live, rebuilt)  # finishes the copy first
            assert scratch_properties(view)["indexes"] == {"chats_partition", "chats_embed", "chats_position",
                                                           "chats_thread"}
            assert result.same, [(t.table, t.only_live[:3], t.only_rebuilt[:3]) for t in result.tables if not t.same]
            rows = live_rows(live)
            excluded = [r for r in rows["chats"] if r["include"] == 0 and r["status"] == "ok"]
            assert excluded and len(rows["chats"]) < history.chat  # resets and deletions did happen
            in_deleted = [r["position"] for r in rows["chats"] if r["workspace_id"] == 3]
            assert in_deleted and min(in_deleted) > deleted_at

            append(ledger, [history._reset(), history._chat()])  # more events, then the swap
            assert swap_in(live, rebuilt) == ledger.recorder.max_notification_id()
            assert live_rows(live) == live_rows(rebuilt)
        finally:
            close([live, locals().get("rebuilt")], scratch)


def close(runners: list[ProjectionRunner | None], *scratches: Scratch) -> None:
    """Close the runners' views and remove the scratch spaces (in a test's `finally`)."""
    for runner in runners:
        if runner is not None:
            runner.view.datastore.close()
    for scratch in scratches:
        scratch.drop()


def live_rows(runner: ProjectionRunner) -> dict[str, list[dict[str, Any]]]:
    with runner.view.read() as tx:
        return {table: tx.all(f"SELECT * FROM {table} ORDER BY id") for table in runner.projection.tables}


class Ledgerbook(SqlProjection):
    """A test read model whose handlers read and change the rows the batch inserted before."""

    name = "ledgerbook"
    tables = ["entries", "totals"]
    schema = [
        "CREATE TABLE IF NOT EXISTS entries (id BIGINT PRIMARY KEY, account TEXT NOT NULL, amount BIGINT NOT NULL,"
        " note TEXT)",
        "CREATE TABLE IF NOT EXISTS totals (account TEXT PRIMARY KEY, total BIGINT NOT NULL, entries BIGINT NOT NULL)",
        "CREATE INDEX IF NOT EXISTS entries_account ON entries (account)",
    ]

    @handles(Workspace.Created)
    def _entry(self, tx: Tx, e: Workspace.Created) -> None:
        account, amount = e.name.split(":")
        # A number as text (as a client might send it): an INSERT lets the database convert it.
        value: Any = amount if e.workspace_id % 5 == 0 else int(amount)
        tx.execute("INSERT INTO entries (id, account, amount) VALUES (?, ?, ?)", (e.workspace_id, account, value))
        if e.workspace_id % 25 == 0:  # reads what was queued, then changes it
            seen = tx.scalar("SELECT COUNT(*) FROM entries WHERE account = ?", (account,))
            tx.execute("UPDATE entries SET note = ? WHERE id = ?", (f"seen {seen}", e.workspace_id))
        tx.execute("INSERT INTO totals VALUES (?, ?, 1) ON CONFLICT (account) DO UPDATE"
                   " SET total = totals.total + excluded.total, entries = totals.entries + 1", (account, int(amount)))
        if e.workspace_id % 45 == 0:  # an insert that reads: never queued, sees the queued rows
            tx.execute("INSERT INTO totals SELECT 'all', SUM(amount), COUNT(*) FROM entries WHERE true"
                       " ON CONFLICT (account) DO UPDATE SET total = excluded.total, entries = excluded.entries")


def test_queued_inserts_are_seen_by_later_statements_in_order(backend: Backend) -> None:
    settings = backend.settings()
    rng = random.Random(3)
    events = [Workspace.Created(originator_id=workspace_uuid(n), originator_version=1,
                                originator_topic=get_topic(Workspace), timestamp=T0, actor_user_id=1,
                                actor_api_key_id=None, correlation_id="c", workspace_id=n,
                                name=f"{rng.choice('abc')}:{rng.randint(1, 99)}", slug=f"s{n}", settings={})
              for n in range(1, 301)]
    with ledger_of(backend) as ledger:
        append(ledger, events)
        batched = ProjectionRunner(ledger, Ledgerbook(open_view(settings, "ledgerbook", Ledgerbook.views())))
        batched.batch = 1000  # one batch: every write queued behind the others
        batched.catch_up()
        expected: dict[str, list[tuple[Any, ...]]] = {"entries": [], "totals": []}
        totals: dict[str, list[int]] = {}
        for e in events:  # the same, worked out one event at a time
            account, amount = e.name.split(":")
            seen = sum(1 for r in expected["entries"] if r[1] == account) + 1
            expected["entries"].append((e.workspace_id, account, int(amount),
                                        f"seen {seen}" if e.workspace_id % 25 == 0 else None))
            totals.setdefault(account, [0, 0])
            totals[account][0] += int(amount)
            totals[account][1] += 1
            if e.workspace_id % 45 == 0:
                totals["all"] = [sum(r[2] for r in expected["entries"]), len(expected["entries"])]
        try:
            with batched.view.read() as tx:
                entries = [tuple(r.values()) for r in tx.all("SELECT id, account, amount, note FROM entries ORDER BY id")]
                got_totals = {r["account"]: [r["total"], r["entries"]] for r in tx.all("SELECT * FROM totals")}
        finally:
            batched.view.datastore.close()
        assert entries == expected["entries"]
        assert got_totals == totals
        if backend.database_url:  # the text amounts went through the INSERT fallback, not lost
            with psycopg.connect(backend.database_url) as conn:
                assert conn.execute("SELECT COUNT(*) FROM entries").fetchone()[0] == 300


def test_a_runner_reading_ahead_applies_every_event_once_while_events_keep_arriving(backend: Backend) -> None:
    settings = backend.settings()
    history = History(seed=11)
    events = list(history.events(1200))
    with ledger_of(backend) as ledger:
        append(ledger, events[:400])
        scratch = Scratch(settings, tag="ahead-test")
        ahead = ProjectionRunner(ledger, ChatsProjection(scratch.open(ChatsProjection)))
        ahead.batch, ahead.read_ahead = 30, True  # many batches, each read while the one before is applied
        plain = ProjectionRunner(ledger, ChatsProjection(open_view(settings, "chats", ChatsProjection.views())))
        writer = threading.Thread(target=append, args=(ledger, events[400:]))
        try:
            writer.start()
            while writer.is_alive():
                ahead.catch_up()
            writer.join()
            head = ledger.recorder.max_notification_id()
            assert ahead.catch_up() == head == plain.catch_up()
            result = compare(plain, ahead)
            assert result.same and result.position == head, [t for t in result.tables if not t.same]
            assert len(live_rows(plain)["chats"]) > 100
        finally:
            writer.join()
            for runner in (ahead, plain):
                runner.view.datastore.close()
            scratch.drop()

"""Tamper evidence for the event store: every stored event's digest chains the previous one's.

The application recorders below are the library's, plus one table, `ledger_chain`, written in
the same transaction as the events: for each new event its position, the position of the
event chained before it, and

    digest = sha256(previous digest ‖ position ‖ previous position ‖ aggregate id ‖ version ‖ topic ‖ state)

Writers are already serialised (SQLite's write lock, taken by the first INSERT; PostgreSQL's
`LOCK TABLE ... IN EXCLUSIVE MODE`, taken by the library before it inserts), so reading the
last link inside that transaction is race-free. A store written before the chain existed (its
chain is empty) gets its links on first open: tampering before that moment can't be seen.
Once the chain has links, nothing links events after the fact: an event appended behind the
application's back stays without a link, and verify names it.

`verify_chain` walks both tables in position order and names the first position where a row
was altered, inserted or removed behind the app's back. Deleting the newest events together
with their links leaves nothing behind to notice; `expect` (a position and digest recorded
elsewhere, e.g. printed by an earlier verify) closes that gap."""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder
from psycopg.sql import SQL, Identifier

GENESIS = bytes(32)
CHAIN_TABLE = "ledger_chain"
BATCH = 5000


def link_digest(previous: bytes, position: int, previous_position: int, originator_id: Any, version: int,
                topic: str, state: bytes) -> bytes:
    """One link of the chain. Every variable-length part is length-prefixed, so no two
    different rows hash the same bytes."""
    oid = originator_id.bytes if isinstance(originator_id, UUID) else str(originator_id).encode()
    h = hashlib.sha256(previous)
    h.update(struct.pack(">qqq", position, previous_position, version))
    for part in (oid, topic.encode(), bytes(state)):
        h.update(struct.pack(">I", len(part)))
        h.update(part)
    return h.digest()


def _bytes(value: Any) -> bytes:
    """A stored blob; text if someone wrote one where bytes belong (it must still hash)."""
    return value.encode() if isinstance(value, str) else bytes(value)


def _uuid(value: Any) -> Any:
    if isinstance(value, UUID):
        return value
    try:
        return UUID(str(value))
    except ValueError:
        return value


def _links(last: tuple[int, bytes] | None, ids: Sequence[int], events: Sequence[StoredEvent],
           ) -> list[tuple[int, int, bytes]]:
    previous_position, previous = last if last else (0, GENESIS)
    rows = []
    for position, e in zip(ids, events):
        previous = link_digest(previous, position, previous_position, _uuid(e.originator_id),
                               e.originator_version, e.topic, e.state)
        rows.append((position, previous_position, previous))
        previous_position = position
    return rows


class ChainedSQLiteRecorder(SQLiteApplicationRecorder):
    def construct_create_table_statements(self) -> list[str]:
        return [*super().construct_create_table_statements(),
                f"CREATE TABLE IF NOT EXISTS {CHAIN_TABLE} (position INTEGER PRIMARY KEY, "
                "prev_position INTEGER NOT NULL, digest BLOB NOT NULL)"]

    def create_table(self) -> None:
        super().create_table()
        if not self.read_links(-1, 1):  # a store from before the chain: link it once
            self.link_unchained()

    def _insert_events(self, c: Any, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        ids = super()._insert_events(c, stored_events, **kwargs)  # the first INSERT took the write lock
        if ids:
            self._append_links(c, ids, stored_events)
        return ids

    def _append_links(self, c: Any, ids: Sequence[int], events: Sequence[StoredEvent]) -> None:
        c.execute(f"SELECT position, digest FROM {CHAIN_TABLE} ORDER BY position DESC LIMIT 1")
        row = c.fetchone()
        last = (row[0], bytes(row[1])) if row else None
        c.executemany(f"INSERT INTO {CHAIN_TABLE} VALUES (?, ?, ?)", _links(last, ids, events))

    def link_unchained(self) -> int:
        """Give links to events stored before the chain existed; return how many."""
        linked = 0
        while True:
            with self.datastore.transaction(commit=True) as c:
                # A write first: it takes the write lock, so no event is appended meanwhile.
                c.execute(f"DELETE FROM {CHAIN_TABLE} WHERE position < 0")
                c.execute(f"SELECT MAX(position) FROM {CHAIN_TABLE}")
                chained = c.fetchone()[0] or 0
                c.execute(f"SELECT rowid, originator_id, originator_version, topic, state FROM "
                          f"{self.events_table_name} WHERE rowid > ? ORDER BY rowid LIMIT ?", (chained, BATCH))
                rows = c.fetchall()
                if not rows:
                    return linked
                ids = [r[0] for r in rows]
                events = [StoredEvent(r[1], r[2], r[3], _bytes(r[4])) for r in rows]
                self._append_links(c, ids, events)
                linked += len(rows)

    def read_events(self, after: int, limit: int) -> list[tuple[int, Any, int, str, bytes]]:
        with self.datastore.transaction(commit=False) as c:
            c.execute(f"SELECT rowid, originator_id, originator_version, topic, state FROM "
                      f"{self.events_table_name} WHERE rowid > ? ORDER BY rowid LIMIT ?", (after, limit))
            return [(r[0], r[1], r[2], r[3], _bytes(r[4])) for r in c.fetchall()]

    def read_links(self, after: int, limit: int) -> list[tuple[int, int, bytes]]:
        with self.datastore.transaction(commit=False) as c:
            c.execute(f"SELECT position, prev_position, digest FROM {CHAIN_TABLE} WHERE position > ? "
                      "ORDER BY position LIMIT ?", (after, limit))
            return [(r[0], r[1], _bytes(r[2])) for r in c.fetchall()]


class ChainedPostgresRecorder(PostgresApplicationRecorder):
    def __init__(self, datastore: Any, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)
        schema = Identifier(self.datastore.schema)
        self.chain_table = SQL("{}.{}").format(schema, Identifier(self.events_table_name.replace("_events", "_chain")))
        self.events_table = SQL("{}.{}").format(schema, Identifier(self.events_table_name))
        self.sql_create_statements.append(SQL(
            "CREATE TABLE IF NOT EXISTS {} (position BIGINT PRIMARY KEY, prev_position BIGINT NOT NULL, "
            "digest BYTEA NOT NULL)").format(self.chain_table))
        # The library's insert, with the array of events sent in binary: psycopg's text form
        # escapes every field of every event (append: 12k events/s text, 48k binary, with links).
        self.insert_events_statement = SQL(
            "INSERT INTO {schema}.{table} AS t (originator_id, originator_version, topic, state) "
            "SELECT originator_id, originator_version, topic, state FROM unnest(%b::{schema}.{type}[]) "
            "RETURNING notification_id").format(schema=schema, table=Identifier(self.events_table_name),
                                                type=Identifier(self.stored_event_type_name))

    def create_table(self) -> None:
        super().create_table()
        if not self.read_links(-1, 1):  # a store from before the chain: link it once
            self.link_unchained()

    def _fetch_ids_after_insert_events(self, curs: Any, stored_events: Sequence[StoredEvent],
                                       **kwargs: Any) -> Sequence[int] | None:
        # Runs inside the insert's transaction, after the library's table lock.
        ids = super()._fetch_ids_after_insert_events(curs, stored_events, **kwargs)
        if ids:
            self._append_links(curs, ids, stored_events)
        return ids

    def _append_links(self, curs: Any, ids: Sequence[int], events: Sequence[StoredEvent]) -> None:
        curs.execute(SQL("SELECT position, digest FROM {} ORDER BY position DESC LIMIT 1").format(self.chain_table))
        row = curs.fetchone()
        last = (row["position"], bytes(row["digest"])) if row else None
        positions, previous, digests = zip(*_links(last, ids, events))
        curs.execute(SQL("INSERT INTO {} SELECT * FROM unnest(%b::bigint[], %b::bigint[], %b::bytea[])")
                     .format(self.chain_table), (list(positions), list(previous), list(digests)))

    def link_unchained(self) -> int:
        linked = 0
        while True:
            with self.datastore.transaction(commit=True) as curs:
                curs.execute(SQL("LOCK TABLE {} IN EXCLUSIVE MODE").format(self.events_table))
                curs.execute(SQL("SELECT MAX(position) AS p FROM {}").format(self.chain_table))
                chained = curs.fetchone()["p"] or 0
                curs.execute(SQL("SELECT notification_id, originator_id, originator_version, topic, state FROM {} "
                                 "WHERE notification_id > %s ORDER BY notification_id LIMIT %s")
                             .format(self.events_table), (chained, BATCH))
                rows = curs.fetchall()
                if not rows:
                    return linked
                ids = [r["notification_id"] for r in rows]
                events = [StoredEvent(r["originator_id"], r["originator_version"], r["topic"], bytes(r["state"]))
                          for r in rows]
                self._append_links(curs, ids, events)
                linked += len(rows)

    def read_events(self, after: int, limit: int) -> list[tuple[int, Any, int, str, bytes]]:
        with self.datastore.transaction(commit=False) as curs:
            # Binary: the state comes as it is stored, not as hex text to escape and parse; the
            # id as text, as SQLite gives it (a UUID object per row cost as much again). Half
            # the client's time per event read; a rebuild reads every event this way.
            curs.execute(SQL("SELECT notification_id, originator_id::text, originator_version, topic, state FROM {} "
                             "WHERE notification_id > %s ORDER BY notification_id LIMIT %s")
                         .format(self.events_table), (after, limit), binary=True)
            return [(r["notification_id"], r["originator_id"], r["originator_version"], r["topic"], bytes(r["state"]))
                    for r in curs.fetchall()]

    def read_links(self, after: int, limit: int) -> list[tuple[int, int, bytes]]:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(SQL("SELECT position, prev_position, digest FROM {} WHERE position > %s "
                             "ORDER BY position LIMIT %s").format(self.chain_table), (after, limit))
            return [(r["position"], r["prev_position"], bytes(r["digest"])) for r in curs.fetchall()]


# verification ------------------------------------------------------------------------------

@dataclass
class Problem:
    position: int
    kind: str  # altered | inserted | removed | truncated
    detail: str


@dataclass
class ChainReport:
    checked: int = 0
    head_position: int = 0
    head_digest: bytes = GENESIS
    problems: list[Problem] = field(default_factory=list)
    problem_count: int = 0

    @property
    def intact(self) -> bool:
        return self.problem_count == 0

    def add(self, problem: Problem, keep: int = 20) -> None:
        self.problem_count += 1
        if len(self.problems) < keep:
            self.problems.append(problem)


def _stream(read: Callable[[int, int], list[Any]], until: int | None) -> Iterator[Any]:
    after = 0
    while True:
        rows = read(after, BATCH)
        for row in rows:
            if until is not None and row[0] > until:
                return
            yield row
        if len(rows) < BATCH:
            return
        after = rows[-1][0]


def verify_chain(recorder: Any, *, until: int | None = None, expect: tuple[int, bytes] | None = None,
                 anchors: Sequence[tuple[int, bytes]] = (),
                 progress: Callable[[int], None] | None = None) -> ChainReport:
    """Walk the events and their links in position order (a batch at a time, beside a running
    server) and report every place where they don't agree."""
    report = ChainReport()
    if until is None:  # a fixed end: events appended while we walk are for the next run
        until = recorder.max_notification_id() or 0
    events, links = _stream(recorder.read_events, until), _stream(recorder.read_links, until)
    event, link = next(events, None), next(links, None)
    previous_position, previous = 0, GENESIS
    seen = 0
    while event is not None or link is not None:
        if link is None or (event is not None and event[0] < link[0]):
            report.add(Problem(event[0], "inserted", "this event has no link in the chain: it was written "
                                                     "behind the application's back"))
            event = next(events, None)
        elif event is None or link[0] < event[0]:
            report.add(Problem(link[0], "removed", "the chain has a link for this position but the event "
                                                   "is gone: it was deleted"))
            previous_position, previous = link[0], link[2]
            link = next(links, None)
        else:
            position, oid, version, topic, state = event
            _, linked_previous, digest = link
            if linked_previous != previous_position:
                if linked_previous > previous_position:
                    report.add(Problem(linked_previous, "removed",
                                       f"the event at {linked_previous} and its link were deleted "
                                       f"(the link at {position} chains to it)"))
                else:
                    report.add(Problem(previous_position, "inserted",
                                       f"the event at {previous_position} was added with a forged link "
                                       f"(the link at {position} skips it)"))
            elif link_digest(previous, position, linked_previous, _uuid(oid), version, topic, state) != digest:
                report.add(Problem(position, "altered", "the stored event (or its link) was changed after "
                                                        "it was written"))
            previous_position, previous = position, digest
            report.checked += 1
            event, link = next(events, None), next(links, None)
        seen += 1
        if progress and seen % BATCH == 0:
            progress(BATCH)
    if progress:
        progress(seen % BATCH)
    report.head_position, report.head_digest = previous_position, previous
    for position, digest in ([expect] if expect is not None else []) + list(anchors):
        _check_anchor(recorder, report, position, digest)
    report.problems.sort(key=lambda p: p.position)
    return report


def _check_anchor(recorder: Any, report: ChainReport, position: int, digest: bytes) -> None:
    if position == 0:  # the empty store: every chain extends it
        if digest != GENESIS:
            report.add(Problem(0, "altered", "the anchor names position 0 with a digest other than the chain's start"))
        return
    links = recorder.read_links(position - 1, 1)
    if not links or links[0][0] != position:
        report.add(Problem(position, "truncated", f"the recorded anchor names position {position}, which is "
                                                  "no longer in the chain: events were removed"))
    elif links[0][2] != digest:
        report.add(Problem(position, "altered", "the link at the recorded anchor has a different digest: "
                                                "the history up to it was rewritten"))

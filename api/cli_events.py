"""`ledgerllm events tail|show|export` and `ledgerllm audit`: the event store read directly.

These commands open only the store (and the views they read), never the whole runtime, so
they start fast and work beside a running server. The store is read in batches of BATCH
notifications: nothing loads every event into memory. Results go to stdout, messages and
progress to stderr."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timezone
from typing import Any
from uuid import UUID

import msgspec
from eventsourcing.persistence import Notification
from eventsourcing.utils import get_topic

from api.progress import Progress
from application.audit import Bound, audit_query, is_username, parse_bound, parse_type, read_audit, resolve_user
from application.event_feed import EventRecord, record_of
from application.ledger import Ledger
from projections.accounts import Accounts
from projections.audit_log import AuditLog, details, event_type, topic_type, type_matches
from projections.runner import ProjectionRunner

BATCH = 1000
POLL_SECONDS = 0.5
_encode = msgspec.json.Encoder().encode


def open_ledger(settings: Any) -> Ledger:
    """The store for a command: on PostgreSQL one connection, beside the servers' pools."""
    from infrastructure.eventstore import ledger_env

    env = ledger_env(settings)
    if "POSTGRES_POOL_SIZE" in env:  # one thread: one connection
        env.update(POSTGRES_POOL_SIZE="1", POSTGRES_MAX_OVERFLOW="1")
    return Ledger(env=env)


class Store:
    """The event store and, on demand, the views a command reads."""

    def __init__(self) -> None:
        from infrastructure.settings import load_settings

        self.settings = load_settings()
        self.ledger = open_ledger(self.settings)
        self.recorder = self.ledger.recorder
        self._runners: list[ProjectionRunner] = []

    def runner(self, projection_class: Any) -> ProjectionRunner:
        """A projection's runner, caught up with the store."""
        from infrastructure.eventstore import open_view

        view = open_view(self.settings, projection_class.name, projection_class.views())
        runner = ProjectionRunner(self.ledger, projection_class(view))
        self._runners.append(runner)
        runner.catch_up()
        return runner

    def accounts_for(self, user: str | None) -> Accounts | None:
        """The accounts view, when `user` is a username to look up (an id needs no view)."""
        if not is_username(user):
            return None
        from projections.accounts import AccountsProjection

        return Accounts(self.runner(AccountsProjection))

    def close(self) -> None:
        for runner in self._runners:
            runner.view.datastore.close()
        self.ledger.close()


@contextmanager
def open_store() -> Iterator[Store]:
    store = Store()
    try:
        yield store
    except BrokenPipeError:  # `ledgerllm events export | head`: the reader has gone; so do we
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing left to flush at exit
    finally:
        store.close()


class EventFilter(msgspec.Struct, frozen=True):
    type: str | None = None
    user_id: int | None = None
    since: Bound | None = None
    until: Bound | None = None

    def wants_topic(self, notification: Notification) -> bool:
        return self.type is None or type_matches(topic_type(notification.topic), self.type)

    def wants(self, event: Any, position: int) -> bool:
        if self.user_id is not None and getattr(event, "actor_user_id", None) != self.user_id:
            return False
        if self.since is not None and not self.since.at_or_after(position, event.timestamp):
            return False
        return self.until is None or self.until.at_or_before(position, event.timestamp)


def record(event: Any, position: int | None, topic: str | None = None) -> EventRecord:
    """One event as the export writes it: the rendering `GET /api/v1/admin/events` shares (which
    leaves out the credential hashes the export keeps for `events import`)."""
    return record_of(event, position, topic or get_topic(type(event)))


def line(event: Any, position: int | None) -> str:
    """One line for people: position, time, type, aggregate, actor user/key, a short summary."""
    moment = event.timestamp.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    key = getattr(event, "actor_api_key_id", None)
    actor = f"user {getattr(event, 'actor_user_id', '-')} key {'-' if key is None else key}"
    where = f"{'?' if position is None else position:>7}  {moment}  {event_type(event):<30}  {event.originator_id}"
    return f"{where}  {actor}  {details(event)}".rstrip()


def _printer(as_json: bool, flush: bool = False) -> Callable[[Any, int | None, str | None], None]:
    out = sys.stdout.buffer

    def show(event: Any, position: int | None, topic: str | None) -> None:
        if as_json:
            out.write(_encode(record(event, position, topic)) + b"\n")
        else:
            out.write(line(event, position).encode() + b"\n")
        if flush:
            out.flush()

    return show


def _newest(store: Store, flt: EventFilter, limit: int) -> tuple[list[tuple[Notification, Any]], int]:
    """The last `limit` matching events, oldest first, reading backwards a batch at a time."""
    head = store.recorder.max_notification_id() or 0
    found: list[tuple[Notification, Any]] = []
    stop = head
    while stop >= 1 and len(found) < limit:
        start = max(1, stop - BATCH + 1)
        for n in reversed(store.recorder.select_notifications(start, BATCH, stop=stop)):
            if flt.wants_topic(n):
                event = store.ledger.mapper.to_domain_event(n)
                if flt.wants(event, n.id):
                    found.append((n, event))
                    if len(found) == limit:
                        break
        stop = start - 1
    found.reverse()
    return found, head


def cmd_tail(args: argparse.Namespace) -> None:
    if args.limit < 1:
        raise SystemExit("error: --limit must be at least 1")
    with open_store() as store:
        flt = EventFilter(type=parse_type(args.type), user_id=resolve_user(store.accounts_for(args.user), args.user))
        show = _printer(args.json, flush=args.follow)
        found, last = _newest(store, flt, args.limit)
        for n, event in found:
            show(event, n.id, n.topic)
        sys.stdout.flush()
        if not args.follow:
            return
        # Ctrl-C, `kill -INT` and `kill` all end the follow cleanly, even when the parent started
        # this process with SIGINT ignored (a background job of a script, a test runner's worker).
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        try:
            while True:
                notifications = store.recorder.select_notifications(last + 1, BATCH)
                for n in notifications:
                    if flt.wants_topic(n):
                        event = store.ledger.mapper.to_domain_event(n)
                        if flt.wants(event, n.id):
                            show(event, n.id, n.topic)
                if notifications:
                    last = notifications[-1].id
                if len(notifications) < BATCH:
                    time.sleep(POLL_SECONDS)
        except KeyboardInterrupt:
            return


def cmd_show(args: argparse.Namespace) -> None:
    from infrastructure.eventstore import aggregate_positions

    with open_store() as store:
        show = _printer(args.json)
        target = args.target.strip()
        if target.isascii() and target.isdigit():
            # more than 18 digits is past any position a store holds (and past its integers)
            found = store.recorder.select_notifications(int(target), 1, stop=int(target)) if len(target) <= 18 else []
            if not found:
                head = store.recorder.max_notification_id() or 0
                raise SystemExit(f"error: no event at position {target}; positions run from 1 to {head}.")
            show(store.ledger.mapper.to_domain_event(found[0]), found[0].id, found[0].topic)
            return
        try:
            aggregate_id = UUID(target)
        except ValueError:
            raise SystemExit("error: give an event position (a number) or an aggregate id (a UUID).") from None
        positions = aggregate_positions(store.recorder, aggregate_id)
        shown = 0
        for event in store.ledger.events.get(aggregate_id):
            show(event, positions.get(event.originator_version), None)
            shown += 1
        if not shown:
            raise SystemExit(f"error: no events for aggregate {aggregate_id}.")


def cmd_export(args: argparse.Namespace) -> None:
    since, until = parse_bound(args.since, "--since"), parse_bound(args.until, "--until")
    flt = EventFilter(since=since, until=until)
    progress = Progress("exported", None, shown=sys.stderr.isatty())  # only on a terminal: stdout is the data
    with open_store() as store:
        out = sys.stdout.buffer
        start = since.position if since is not None and since.position is not None else 1
        stop = until.position if until is not None else None
        while True:
            notifications = store.recorder.select_notifications(start, BATCH, stop=stop)
            lines = []
            for n in notifications:
                event = store.ledger.mapper.to_domain_event(n)
                if flt.wants(event, n.id):
                    lines.append(_encode(record(event, n.id, n.topic)))
            if lines:
                out.write(b"\n".join(lines) + b"\n")
            progress.add(len(lines))
            if len(notifications) < BATCH:
                break
            start = notifications[-1].id + 1
        out.flush()
    progress.done()


def cmd_audit(args: argparse.Namespace) -> None:
    from projections.audit_log import AuditLogProjection

    with open_store() as store:
        query = audit_query(store.accounts_for(args.user), user=args.user, key=args.key, type=args.type,
                            since=args.since, until=args.until, limit=args.limit, offset=args.offset)
        page = read_audit(AuditLog(store.runner(AuditLogProjection)), query)
        out = sys.stdout.buffer
        for row in page.events:
            if args.json:
                out.write(_encode(row) + b"\n")
            else:
                key = "-" if row.actor_api_key_id is None else row.actor_api_key_id
                out.write(f"{row.position:>7}  {row.time}  user {row.actor_user_id} key {key}  {row.summary}\n"
                          .encode())
        out.flush()
    if not args.json:
        more = f"; more with --offset {query.offset + len(page.events)}" if page.has_more else ""
        print(f"{len(page.events)} of {page.total} events, newest first{more}", file=sys.stderr)

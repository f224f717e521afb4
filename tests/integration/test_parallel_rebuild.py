"""A rebuild whose events are decoded by worker processes (projections/decode_pool.py), on real
SQLite and PostgreSQL with sealed content: the copy equals the live view row by row, the workers
did the decoding, and an event that cannot be decoded or applied stops it exactly where a
one-process rebuild stops, with the same rows before it."""

from __future__ import annotations

import base64
from typing import Any

import msgspec
import pytest
from eventsourcing.persistence import StoredEvent

import projections.rebuild as rebuild
from application.ledger import Ledger
from domain.chats import Chat
from infrastructure.eventstore import open_view
from projections.chats import ChatsProjection
from projections.rebuild import Scratch, build, compare, swap_in
from projections.runner import ProjectionRunner
from tests.integration.test_bulk_rebuild import History, append, close, ledger_of, live_rows
from tests.support.app import Backend


class Counted:
    """Counts the events the rebuilding process decodes itself (the rest came from workers)."""

    def __init__(self, ledger: Ledger) -> None:
        self.calls = 0
        self.decode = ledger.mapper.to_domain_event
        ledger.mapper.to_domain_event = self  # type: ignore[method-assign]

    def __call__(self, stored: Any) -> Any:
        self.calls += 1
        return self.decode(stored)


@pytest.fixture()
def small_ranges(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rebuild, "REBUILD_BATCH", 97)  # many ranges, decoded out of order, applied in order


def test_a_rebuild_decoded_by_workers_equals_the_live_view(backend: Backend, small_ranges: None) -> None:
    settings = backend.settings()
    history = History(seed=5)
    events = list(history.events(1200))
    with ledger_of(backend) as ledger:
        append(ledger, events)
        live = ProjectionRunner(ledger, ChatsProjection(open_view(settings, "chats", ChatsProjection.views())))
        live.catch_up()
        scratch = Scratch(settings, tag="parallel-test")
        counted = Counted(ledger)
        try:
            rebuilt = build(ledger, ChatsProjection(scratch.open(ChatsProjection)), live.view, workers=2)
            assert counted.calls == 0  # every event came decoded from a worker
            assert rebuilt.position() == ledger.recorder.max_notification_id()
            result = compare(live, rebuilt)
            assert result.same, [(t.table, t.only_live[:3], t.only_rebuilt[:3]) for t in result.tables if not t.same]
            prompts = [r["prompt"] for r in live_rows(rebuilt)["chats"]]
            assert len(prompts) > 300 and all(p.startswith("prompt ") for p in prompts)  # opened, not erased

            append(ledger, [history._chat(), history._reset()])
            assert swap_in(live, rebuilt) == ledger.recorder.max_notification_id()
            assert live_rows(live) == live_rows(rebuilt)
        finally:
            close([live, locals().get("rebuilt")], scratch)


def damaged(ledger: Ledger, event: Chat.Recorded) -> StoredEvent:
    """The event stored with its sealed prompt's ciphertext altered: it no longer authenticates."""
    stored = ledger.mapper.to_stored_event(event)
    state = msgspec.json.decode(stored.state)
    flipped = bytearray(base64.b64decode(state["prompt"]["ciphertext"]))
    flipped[-1] ^= 1
    state["prompt"]["ciphertext"] = base64.b64encode(bytes(flipped)).decode()
    return StoredEvent(stored.originator_id, stored.originator_version, stored.topic, msgspec.json.encode(state))


@pytest.mark.parametrize("fault", ["undecodable", "unappliable"])
def test_a_rebuild_with_workers_stops_where_one_without_them_stops(backend: Backend, small_ranges: None,
                                                                    fault: str) -> None:
    settings = backend.settings()
    history = History(seed=9)
    events = list(history.events(900))
    with ledger_of(backend) as ledger:
        append(ledger, events[:500])
        chats = [e for e in events[:500] if isinstance(e, Chat.Recorded)]
        if fault == "undecodable":
            ledger.recorder.insert_events([damaged(ledger, history._chat())])
        else:  # decodes, but its chat id is taken: the view cannot apply it
            again = history._chat()
            taken = type(again)(**{**vars(again), "chat_id": chats[3].chat_id})
            ledger.recorder.insert_events([ledger.mapper.to_stored_event(taken)])
        bad = ledger.recorder.max_notification_id()
        append(ledger, events[500:])
        scratches = {workers: Scratch(settings, tag=f"stall-{fault}-{workers}") for workers in (0, 2)}
        runners = []
        try:
            for workers, scratch in scratches.items():
                view = scratch.open(ChatsProjection)
                runners.append(build(ledger, ChatsProjection(view), view, workers=workers))
            one, parallel = runners
            assert one.stall is not None and parallel.stall is not None
            assert one.stall.position == parallel.stall.position == bad
            assert one.position() == parallel.position() == bad - 1
            assert live_rows(one) == live_rows(parallel)
            assert len(live_rows(parallel)["chats"]) > 100
        finally:
            close(runners, *scratches.values())

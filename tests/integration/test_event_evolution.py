"""Event evolution on a real store: an event written in its old shape (as the previous release
stored it, straight through the recorder) is read through the new code, upcast, and the digest
chain over the unchanged stored bytes stays intact."""

from __future__ import annotations

from application.ledger import Ledger
from infrastructure.chain import verify_chain
from infrastructure.eventstore import ledger_env
from tests.unit.test_mapper import ACTOR, Gadget, gadget_uuid, v1_priced


def test_an_old_shaped_event_in_the_store_is_read_through_the_new_code(backend):
    ledger = Ledger(env=ledger_env(backend.settings()))
    try:
        gadget = Gadget.make(ACTOR, 1, "lamp")
        ledger.save(gadget)
        ledger.recorder.insert_events([v1_priced(250)])  # version 1 of the code wrote this
        old_bytes = [e.state for e in ledger.recorder.select_events(gadget_uuid(1))]

        loaded = ledger.repository.get(gadget_uuid(1))
        assert (loaded.name, loaded.price, loaded.currency, loaded.version) == ("lamp", 250, "EUR", 2)
        loaded.set_price(ACTOR, 300, "USD")  # the new code appends version-2 events beside it
        ledger.save(loaded)
        again = ledger.repository.get(gadget_uuid(1))
        assert (again.price, again.currency, again.version) == (300, "USD", 3)

        history = list(ledger.events.get(gadget_uuid(1)))
        assert [type(e).__name__ for e in history] == ["Made", "Priced", "Priced"]
        assert history[1].currency == "EUR" and history[1].actor_user_id == 3
        assert [e.state for e in ledger.recorder.select_events(gadget_uuid(1))][:2] == old_bytes  # never rewritten
        report = verify_chain(ledger.recorder)
        assert report.intact and report.checked == 3
    finally:
        ledger.close()

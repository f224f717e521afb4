"""The webhook checkpoints on SQLite and PostgreSQL: one process at a time holds a webhook's
lease, a checkpoint write by a process that lost it changes nothing, failures back off
exponentially and park, and unparking resumes at the checkpoint."""

from __future__ import annotations

import threading

from infrastructure.webhook_store import DeliveryStore


def test_one_lease_holder_at_a_time_and_only_it_moves_the_checkpoint(backend):
    a, b = DeliveryStore(backend.settings()), DeliveryStore(backend.settings())
    try:
        assert a.lease(1, 10, "a", now=100.0, seconds=30).position == 10
        assert b.lease(1, 99, "b", now=101.0, seconds=30) is None  # held by a
        assert not b.advance(1, "b", 11, 1, lease_until=200.0)
        assert a.advance(1, "a", 11, 1, lease_until=140.0)  # renews a's lease to 140
        assert b.lease(1, 10, "b", now=139.0, seconds=30) is None
        taken = b.lease(1, 10, "b", now=141.0, seconds=30)  # a's lease ran out: b resumes at a's checkpoint
        assert taken is not None and taken.position == 11 and taken.delivered == 1
        assert not a.advance(1, "a", 12, 1, lease_until=200.0)
        b.release("b")
        assert a.lease(1, 10, "a", now=142.0, seconds=30) is not None  # released: taken over at once
    finally:
        a.close()
        b.close()


def test_failures_back_off_exponentially_then_park_and_unpark_resumes(backend):
    store = DeliveryStore(backend.settings())
    try:
        store.lease(7, 3, "me", now=0.0, seconds=30)
        waits = []
        for _ in range(3):
            parked = store.fail(7, "me", "HTTP 500", now=1000.0, base=2.0, cap=5.0, park_after=4)
            waits.append(store.states()[7].next_attempt_at - 1000.0)
            assert not parked
        assert waits == [2.0, 4.0, 5.0]  # doubling, capped
        assert store.fail(7, "me", "HTTP 503", now=1000.0, base=2.0, cap=5.0, park_after=4)
        state = store.states()[7]
        assert state.parked and state.failures == 4 and state.last_error == "HTTP 503"
        assert store.unpark(7) == 3 and store.unpark(7) is None
        state = store.states()[7]
        assert not state.parked and state.failures == 0 and state.next_attempt_at == 0
    finally:
        store.close()


def test_racing_processes_get_the_lease_once(backend):
    stores = [DeliveryStore(backend.settings()) for _ in range(4)]
    try:
        won: list[str] = []
        barrier = threading.Barrier(len(stores))

        def race(n: int) -> None:
            barrier.wait()
            if stores[n].lease(5, 0, f"p{n}", now=10.0, seconds=30) is not None:
                won.append(f"p{n}")

        threads = [threading.Thread(target=race, args=(n,)) for n in range(len(stores))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert len(won) == 1, won
    finally:
        for s in stores:
            s.close()

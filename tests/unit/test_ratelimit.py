"""GCRA: `limit` requests at once, then one per `window/limit` seconds."""

from infrastructure.ratelimit import gcra


def test_allows_a_burst_of_limit_then_refuses_until_a_cell_refills():
    tat, now, seen = 0.0, 1000.0, []
    for _ in range(4):
        decision, tat_next = gcra(tat or now, now, limit=3, window=60)
        seen.append((decision.allowed, decision.remaining))
        if decision.allowed:
            tat = tat_next
    assert seen == [(True, 2), (True, 1), (True, 0), (False, 0)]
    refused, _ = gcra(tat, now, 3, 60)
    assert refused.reset == 20  # one cell is 60/3 s
    later, _ = gcra(tat, now + 20, 3, 60)
    assert later.allowed and later.remaining == 0


def test_an_idle_key_is_full_again_after_the_window():
    decision, tat = gcra(1000.0, 1000.0, 5, 60)
    for _ in range(4):
        decision, tat = gcra(tat, 1000.0, 5, 60)
    assert decision.remaining == 0
    fresh, _ = gcra(tat, 1000.0 + 61, 5, 60)
    assert fresh.allowed and fresh.remaining == 4

"""The SSE bridge hands each frame to the event loop while the producing thread is still busy.

A streamed reply is parsed on a worker thread. When the model's bytes arrive in a burst, that
thread computes on without blocking and keeps the GIL, so the loop could only send a frame when
the thread's GIL slice ran out. Here the slice is made longer than the test (the interpreter's
switch interval), so the loop gets the first frame during the producer's busy spell only if the
bridge itself lets it in; the spell ends early once the loop has the frame, so a pass is quick.
The bridge's wait for the loop is stretched to seconds, so a busy machine cannot make the loop
miss it."""

from __future__ import annotations

import asyncio
import sys
import threading
import time

from api.sse import sse

SPELL_S = 3.0  # how long the producer computes after its first frame, at most


def test_the_loop_takes_a_frame_while_the_producer_keeps_computing(monkeypatch):
    monkeypatch.setattr("api.sse.HANDOFF_WAIT_S", 10.0, raising=False)
    got_first = threading.Event()
    seen_during_spell: list[bool] = []

    def produce(cancel: threading.Event):
        yield {"n": 1}
        deadline = time.monotonic() + SPELL_S
        while not got_first.is_set() and time.monotonic() < deadline:
            sum(range(1000))  # pure Python: holds the GIL between switch checks
        seen_during_spell.append(got_first.is_set())
        yield {"n": 2}

    async def consume() -> list[bytes]:
        frames = []
        async for chunk in sse(produce).iterator:
            frames.append(chunk)
            got_first.set()
        return frames

    interval = sys.getswitchinterval()
    sys.setswitchinterval(30.0)  # no forced GIL switch within the test
    try:
        frames = asyncio.run(consume())
    finally:
        sys.setswitchinterval(interval)
    assert frames == [b'data: {"n":1}\n\n', b'data: {"n":2}\n\n']
    assert seen_during_spell == [True]  # the loop had the first frame before the producer went on

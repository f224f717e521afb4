"""Server-sent events from a synchronous frame generator running in a worker thread.

The generator (the chat pipeline) blocks on the model; frames cross to the event loop
through an asyncio queue (the thread hands each one to the loop; no thread hop per frame).
When the loop is idle, waiting for the next frame, the thread waits (briefly) after the hand-off
until the loop has taken it: when the model's bytes arrive in a burst the thread would
otherwise parse on holding the GIL, and the loop could send the frame only when the thread's
GIL slice ran out (5 ms by default). While the loop is busy sending (a slow client), the thread
does not wait.
If the client goes away, the `cancel` event is set: the pipeline stops the
upstream call and records what it has as a partial exchange."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import msgspec
from litestar.response import Stream

log = logging.getLogger("ledgerllm.api")
_DONE = object()
HANDOFF_WAIT_S = 0.005  # at most one default GIL slice: never later than without the wait
SSE_HEADERS = {"Cache-Control": "no-cache", "Connection": "keep-alive", "Access-Control-Allow-Origin": "*",
               "X-Accel-Buffering": "no"}
_encode = msgspec.json.Encoder().encode


def frame(data: Any) -> bytes:
    return b"data: " + (data if isinstance(data, bytes) else _encode(data)) + b"\n\n"


def sse(produce: Callable[[threading.Event], Iterator[Any]], on_error: Callable[[Exception], Any] | None = None,
        tail: bytes = b"") -> Stream:
    """A `text/event-stream` response of `data: <json>` frames; `tail` ends the stream
    (OpenAI's `data: [DONE]`; nothing for AnythingLLM's own framing)."""

    async def frames() -> AsyncIterator[bytes]:
        cancel = threading.Event()
        loop = asyncio.get_running_loop()
        items: asyncio.Queue[Any] = asyncio.Queue()
        idle = threading.Event()  # set while the loop waits for the next frame
        taken = threading.Event()  # set by the loop when it took a frame

        def put(item: Any) -> None:  # from the worker thread: no thread hop per frame on the loop's side
            wanted = idle.is_set()
            taken.clear()
            try:
                loop.call_soon_threadsafe(items.put_nowait, item)
            except RuntimeError:  # the loop is closed (server shutting down): nobody is listening
                cancel.set()
                return
            if wanted:
                taken.wait(HANDOFF_WAIT_S)  # blocking releases the GIL: the loop sends the frame now

        def work() -> None:
            try:
                for item in produce(cancel):
                    put(item)
            except Exception as e:  # noqa: BLE001 - sent to the client as an abort frame
                log.exception("stream failed")
                if on_error is not None:
                    put(on_error(e))
            finally:
                put(_DONE)

        idle.set()  # the loop waits for the first frame from the start
        threading.Thread(target=work, name="ledgerllm-stream", daemon=True).start()
        try:
            while True:
                idle.set()
                item = await items.get()
                idle.clear()
                taken.set()
                if item is _DONE:
                    break
                yield frame(item)
            if tail:
                yield tail
        finally:
            cancel.set()

    return Stream(frames(), media_type="text/event-stream", headers={**SSE_HEADERS, "Content-Type": "text/event-stream"})

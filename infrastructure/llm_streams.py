"""Streams that can be cancelled and that stall out: a guard around litellm's stream that
closes the HTTP response (and its socket) once the cancel event is set or a chunk is late,
and the watchdog thread that reaches a consumer blocked on a read."""

from __future__ import annotations

import functools
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from infrastructure.llm_errors import map_error, safe_model
from infrastructure.llm_types import CompletionError, LLMConfig, response_taker

if TYPE_CHECKING:  # pragma: no cover
    import httpx

# --- streams: cancellation and stall detection -------------------------------------------


class StreamGuard:
    """One stream's HTTP response, and the means to abort it from another thread.

    The consumer thread opens and reads the stream inside ``opening()``, where the LLM HTTP
    client's transport hands the guard the response it opens (``take``); it brackets every
    blocking read with ``enter_wait``/``leave_wait``, and ``check``s the cancel event between
    reads. The watchdog thread calls ``poll``: when ``cancel`` is set, or a read has waited
    longer than the timeout (plus a grace, as httpx's own read timeout should fire first),
    it ``shutdown(SHUT_RDWR)``s the response's socket. That sends the server a FIN at once and
    wakes a consumer blocked in a read (its read fails, it sees the abort and closes the
    response itself, in its own thread). The watchdog never closes the socket: closing a
    descriptor another thread is blocked on neither wakes that thread nor reaches the peer
    (the blocked poll keeps the socket alive), and the freed descriptor number could be
    reused under the reader's feet. A consumer parked between chunks (or one that never
    comes back) is covered too: the server still sees the FIN.

    The response's byte stream is wrapped so that releasing the connection back to httpx's
    pool and the watchdog's shutdown exclude each other: a connection already handed back
    (and perhaps reused by another request) is never shut down.
    """

    GRACE = 0.5

    def __init__(self, cancel: threading.Event | None, timeout: float) -> None:
        self.cancel = cancel
        self.timeout = timeout
        self.lock = threading.Lock()
        self.response: httpx.Response | None = None
        self.sock: socket.socket | None = None
        self.released = False  # the response's connection went back to httpx (or closed)
        self.waiting_since: float | None = None  # the consumer is blocked in a read since
        self.aborted: str | None = None  # "cancelled" | "timeout"
        self.shut = False  # the watchdog has shut the socket down

    # consumer side

    @contextmanager
    def opening(self) -> Iterator[None]:
        """Within it, a response that litellm opens on this thread is handed to `take`."""
        token = response_taker.set(self.take)
        try:
            yield
        finally:
            response_taker.reset(token)

    def take(self, request: httpx.Request, response: httpx.Response) -> httpx.Response:
        """Called by the client's transport with the response it opened: keeps it and its
        socket, and returns it with its byte stream guarded."""
        import httpx

        sock = None
        try:
            stream = response.extensions.get("network_stream")
            sock = stream.get_extra_info("socket") if stream is not None else None
        except Exception:  # noqa: BLE001 - best effort: without it, cancel acts between chunks
            sock = None
        guarded = httpx.Response(response.status_code, headers=response.headers, request=request,
                                 extensions=response.extensions,
                                 stream=_guarded_stream_class()(response.stream, self))
        with self.lock:
            self.response, self.released = guarded, False
            self.sock = sock if isinstance(sock, socket.socket) else None
        return guarded

    def enter_wait(self) -> None:
        self.waiting_since = time.monotonic()

    def leave_wait(self) -> None:
        self.waiting_since = None

    def check(self, config: LLMConfig) -> None:
        if self.aborted is None and self.cancel is not None and self.cancel.is_set():
            self.aborted = "cancelled"
        if self.aborted is not None:
            self.close()
            raise self._aborted_error(config)

    def error(self, e: BaseException, config: LLMConfig) -> CompletionError:
        """The error to raise for an exception from litellm: the abort's, if we caused it."""
        if self.aborted is None and self.cancel is not None and self.cancel.is_set():
            self.aborted = "cancelled"
        self.close()
        if self.aborted is not None:
            return self._aborted_error(config)
        return map_error(e, config)

    def close(self) -> None:
        response = self.response
        if response is not None:
            try:
                response.close()
            except Exception:  # noqa: BLE001
                pass

    def _aborted_error(self, config: LLMConfig) -> CompletionError:
        if self.aborted == "timeout":
            return CompletionError(
                f"The LLM ({safe_model(config)}) stopped sending for more than {config.timeout:g} s.", "timeout"
            )
        return CompletionError("The completion was cancelled.", "cancelled")

    # watchdog side

    def poll(self, now: float) -> None:
        if self.shut or self.released:
            return
        if self.aborted is None:
            since = self.waiting_since
            if self.cancel is not None and self.cancel.is_set():
                self.aborted = "cancelled"
            elif since is not None and now - since > self.timeout + self.GRACE:
                self.aborted = "timeout"
            else:
                return
        with self.lock:
            if self.released or self.sock is None:
                return  # nothing attached yet (or no socket found): the consumer acts on its next check
            self.shut = True
            try:
                socket.socket.shutdown(self.sock, socket.SHUT_RDWR)  # the plain socket call, even for TLS
            except OSError:
                pass


@functools.cache
def _guarded_stream_class() -> type:
    """``httpx.Response.stream`` wrapped: the guard is marked released, under its lock, before
    the connection goes back to the pool. (httpx insists on a ``SyncByteStream``; the class
    is made on first use so that importing this module does not import httpx.)"""
    import httpx

    class GuardedByteStream(httpx.SyncByteStream):
        def __init__(self, inner: Any, guard: StreamGuard) -> None:
            self._inner = inner
            self._guard = guard

        def __iter__(self) -> Iterator[bytes]:
            return iter(self._inner)

        def close(self) -> None:
            with self._guard.lock:
                self._guard.released = True
            self._inner.close()

    return GuardedByteStream


class _Watchdog:
    """One daemon thread for all streams in the process: looks at each active stream every
    ``interval`` seconds (and sleeps while there is none)."""

    interval = 0.02

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._guards: set[StreamGuard] = set()
        self._thread: threading.Thread | None = None

    def add(self, guard: StreamGuard) -> None:
        with self._cond:
            self._guards.add(guard)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="llm-stream-watchdog", daemon=True)
                self._thread.start()
            self._cond.notify()

    def remove(self, guard: StreamGuard) -> None:
        with self._cond:
            self._guards.discard(guard)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._guards:
                    self._cond.wait()
                self._cond.wait(self.interval)
                guards = list(self._guards)
            now = time.monotonic()
            for guard in guards:
                try:
                    guard.poll(now)
                except Exception:  # noqa: BLE001 - the watchdog must survive anything
                    pass


stream_watchdog = _Watchdog()

"""Request ids and the access log: one line per request, tying events to requests.

The id (ours, or the caller's `X-Request-Id` when it is a short safe token that cannot pass
for one of ours) is the `correlation_id` of every event the request appends. `RequestEdge`,
the outermost layer, stamps it on the response and writes the access line, so every response
has them: errors raised by middleware (auth, rate limits) and requests no route matches too.
The line never holds a header value, a body or a query string, so no secret reaches the log."""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Iterator
from typing import Protocol

from litestar.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("ledgerllm.access")
_SAFE_ID = re.compile(rb"[A-Za-z0-9._-]{8,64}")
# Correlation ids the server and the CLI make themselves: a caller must not pass for them.
_RESERVED = (b"cli-", b"install")


def caller_request_id(value: bytes) -> str | None:
    """The caller's `X-Request-Id` if it is a short safe token that cannot pass for an id of
    ours (`cli-...`), else None (the server makes one)."""
    if _SAFE_ID.fullmatch(value) and not value.lower().startswith(_RESERVED):
        return value.decode()
    return None
_SECRET_IN_PATH = re.compile(r"^(/api/invite/)[^/]+")  # invite codes travel in the path


def loggable_path(path: str) -> str:
    return _SECRET_IN_PATH.sub(r"\1<code>", path)


_ID_BYTES = 16
_POOL = 256  # ids per read of the OS's randomness
_pool: Iterator[bytes] = iter(())


def new_request_id() -> str:
    """A fresh request id: 32 random hex characters from the OS's CSPRNG, unguessable, so no
    caller can send the id another request will get. Read 256 ids at a time: each read is a
    system call that lets go of the GIL, and on a busy server each such let-go can cost the
    event loop a thread switch (`next` on a list iterator is atomic, so threads may share it)."""
    global _pool
    for chunk in _pool:
        return chunk.hex()
    data = os.urandom(_ID_BYTES * _POOL)
    _pool = iter([data[i:i + _ID_BYTES] for i in range(0, len(data), _ID_BYTES)])
    return next(_pool).hex()


class RequestCounter(Protocol):
    """Counts requests by route template (`api.metrics.RequestCounts`)."""

    def begin(self, scope: Scope) -> bool:
        """Whether this request is counted; if so it is in progress until `end`."""

    def end(self, scope: Scope, status: int, seconds: float) -> None: ...


class RequestEdge:
    """The outermost layer of every HTTP request, outside Litestar's router (installed by
    `api.app.create_app` around `Litestar.asgi_handler`), so it also sees requests no route
    matches. It gives the request its id and start time, stamps X-Request-Id (and RateLimit-*,
    and the read-only position when `stamp` is given) on the response and writes the access
    line, and has `counts` count it (by the route template the router left in the scope, so
    also no route at all). It hands a request without an `Origin` header past Litestar's CORS
    layer, which would only build a header map to find no origin in it; with one, CORS runs as
    configured."""

    def __init__(self, cors: ASGIApp, inner: ASGIApp,
                 stamp: Callable[[Scope], tuple[bytes, bytes] | None] | None = None,
                 counts: RequestCounter | None = None) -> None:
        self.cors = cors
        self.inner = inner
        self.stamp = stamp
        self.counts = counts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.cors(scope, receive, send)
            return
        request_id = None
        origin = False
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                request_id = caller_request_id(value)
            elif name == b"origin":
                origin = True
        state = scope["state"]
        request_id = state["request_id"] = request_id or new_request_id()
        state["started"] = started = time.perf_counter()

        span = [0.0, 500]  # first body message out, status

        async def stamped(message: Message) -> None:
            if message["type"] == "http.response.start":
                span[1] = message["status"]
                message["headers"] = self._headers(message, scope, request_id)
                if log.isEnabledFor(logging.INFO):
                    _access_line(scope, message["status"], request_id, started)
            elif not span[0] and message["type"] == "http.response.body":
                span[0] = time.perf_counter()
            await send(message)

        counts = self.counts if self.counts is not None and self.counts.begin(scope) else None
        try:
            await (self.cors if origin else self.inner)(scope, receive, stamped)
        finally:
            if counts is not None:
                counts.end(scope, int(span[1]), (span[0] or time.perf_counter()) - started)

    def _headers(self, message: Message, scope: Scope, request_id: str) -> list[tuple[bytes, bytes]]:
        headers = list(message.get("headers", []))
        headers.append((b"x-request-id", request_id.encode()))
        rate = scope["state"].get("rate_limit")
        if rate is not None:
            headers += [
                (b"ratelimit-limit", str(rate.limit).encode()),
                (b"ratelimit-remaining", str(rate.remaining).encode()),
                (b"ratelimit-reset", str(rate.reset).encode()),
            ]
        if self.stamp is not None:
            extra = self.stamp(scope)
            if extra is not None:
                headers.append(extra)
        return headers


def _access_line(scope: Scope, status: int, request_id: str, started: float) -> None:
    user = scope.get("user")
    log.info(
        "%s %s %s %d %.1fms user=%s key=%s",
        request_id, scope["method"], loggable_path(scope["path"]), status, (time.perf_counter() - started) * 1000,
        getattr(user, "user_id", "-"), getattr(user, "api_key_id", None) or "-",
    )

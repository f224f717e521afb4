"""Request ids and the access log: one line per request, tying events to requests.

The id (ours, or the caller's `X-Request-Id` when it is a short safe token that cannot pass
for one of ours) is the
`correlation_id` of every event the request appends. It is stamped on the response and the
access line is written from a `before_send` hook, which Litestar runs on every response,
also on errors raised by middleware (auth, rate limits). The line never holds a header
value, a body or a query string, so no secret reaches the log."""

from __future__ import annotations

import logging
import os
import re
import time

from litestar.types import Message, Scope

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


def new_request_id() -> str:
    """A fresh request id: 32 random hex characters, unguessable, so no caller can send the id
    another request will get (uuid4().hex is the same shape at 3.5x the cost)."""
    return os.urandom(16).hex()


def begin(scope: Scope) -> None:
    """Give an HTTP request its id and start time before anything else runs (called by the
    outermost middleware, `api.metrics.RequestMetrics`)."""
    request_id = None
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            request_id = caller_request_id(value)
    state = scope.setdefault("state", {})
    state["request_id"] = request_id or new_request_id()
    state["started"] = time.perf_counter()


async def stamp_response(message: Message, scope: Scope) -> None:
    """before_send hook: add X-Request-Id and RateLimit-* headers, write the access line. A
    coroutine: Litestar would run a plain function in a worker thread, twice per request."""
    if message["type"] != "http.response.start" or scope["type"] != "http":
        return
    state = scope.get("state", {})
    request_id = state.get("request_id")
    if request_id is None:  # the request never reached our middleware (e.g. no route at all)
        request_id = state["request_id"] = new_request_id()
    headers = list(message.get("headers", []))
    headers.append((b"x-request-id", request_id.encode()))
    rate = state.get("rate_limit")
    if rate is not None:
        headers += [
            (b"ratelimit-limit", str(rate.limit).encode()),
            (b"ratelimit-remaining", str(rate.remaining).encode()),
            (b"ratelimit-reset", str(rate.reset).encode()),
        ]
    message["headers"] = headers
    if log.isEnabledFor(logging.INFO):
        user = scope.get("user")
        started = state.get("started")
        took = (time.perf_counter() - started) * 1000 if started else 0.0
        log.info(
            "%s %s %s %d %.1fms user=%s key=%s",
            request_id, scope["method"], loggable_path(scope["path"]), message["status"], took,
            getattr(user, "user_id", "-"), getattr(user, "api_key_id", None) or "-",
        )

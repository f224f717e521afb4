"""Request ids and the access log: one line per request, tying events to requests.

The id (`X-Request-Id`, ours, or the caller's when it is a short safe token) is the
`correlation_id` of every event the request appends. The line never holds a header value,
a body or a query string, so no secret reaches the log."""

from __future__ import annotations

import logging
import re
import time
import uuid

from litestar.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("ledgerllm.access")
_SAFE_ID = re.compile(rb"^[A-Za-z0-9._-]{8,64}$")
_SECRET_IN_PATH = re.compile(r"^(/api/invite/)[^/]+")  # invite codes travel in the path


def loggable_path(path: str) -> str:
    return _SECRET_IN_PATH.sub(r"\1<code>", path)


class RequestLogMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = uuid.uuid4().hex
        for name, value in scope["headers"]:
            if name == b"x-request-id" and _SAFE_ID.match(value):
                request_id = value.decode()
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
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
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            user = scope.get("user")
            log.info(
                "%s %s %s %d %.1fms user=%s key=%s",
                request_id, scope["method"], loggable_path(scope["path"]), status,
                (time.perf_counter() - started) * 1000,
                getattr(user, "user_id", "-"), getattr(user, "api_key_id", None) or "-",
            )

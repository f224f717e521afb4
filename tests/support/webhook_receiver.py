"""A webhook receiver on loopback: a real HTTP server that records every POST and answers 500
to the first `fail_first` of them (or to all while `failing` is set)."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DEADLINE = 60.0


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    answered: int

    @property
    def event(self) -> dict[str, Any]:
        return json.loads(self.body)

    @property
    def position(self) -> int:
        return int(self.headers["x-ledgerllm-delivery"])

    def signed_by(self, secret: str) -> bool:
        expected = "sha256=" + hmac.new(secret.encode(), self.body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, self.headers.get("x-ledgerllm-signature", ""))


class WebhookReceiver:
    def __init__(self, fail_first: int = 0, failing: bool = False) -> None:
        self.fail_first, self.failing = fail_first, failing
        self.received: list[Received] = []
        self.changed = threading.Condition()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with owner.changed:
                    fail = owner.failing or len(owner.received) < owner.fail_first
                    status = 500 if fail else 200
                    owner.received.append(Received({k.lower(): v for k, v in self.headers.items()}, body, status))
                    owner.changed.notify_all()
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def taken(self) -> list[Received]:
        """The deliveries answered 2xx, in arrival order."""
        with self.changed:
            return [r for r in self.received if r.answered == 200]

    def wait_for(self, what: Callable[[WebhookReceiver], bool], timeout: float = DEADLINE) -> None:
        deadline = time.monotonic() + timeout
        with self.changed:
            while not what(self):
                left = deadline - time.monotonic()
                assert left > 0, f"receiver did not see it in {timeout}s: {[(r.position, r.answered) for r in self.received]}"
                self.changed.wait(min(left, 0.5))


def wait_until(condition: Callable[[], Any], timeout: float = DEADLINE, what: str = "condition") -> Any:
    """Poll `condition` until it returns something truthy (returned), for up to `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        found = condition()
        if found:
            return found
        assert time.monotonic() < deadline, f"{what} not met in {timeout}s"
        time.sleep(0.05)

"""A real OpenAI-compatible HTTP server on loopback, scripted by the tests.

``LLMServer().start()`` listens on ``127.0.0.1:<free port>`` (the OS picks the port) and
serves, from a background thread, with one thread per connection (HTTP/1.1 keep-alive,
chunked streaming, every frame written straight to the socket):

* ``POST /v1/chat/completions``: a ``chat.completion`` JSON reply, or with ``"stream": true``
  a ``text/event-stream`` of ``chat.completion.chunk`` frames (one per word with its leading
  whitespace), a final ``finish_reason: "stop"`` frame, a usage frame when
  ``stream_options.include_usage`` is true, then ``data: [DONE]``.
* ``GET /v1/models``: the model names given to the constructor.
* ``POST /v1/images/generations`` (JSON) and ``POST /v1/images/edits`` (multipart): one image,
  ``{"created", "data": [{"b64_json": <TINY_PNG>}]}``; a ``size`` other than ``auto`` or
  ``<w>x<h>`` is a 400, as OpenAI's. ``reply_image_error(status, message)`` fails the next one.

Token counts are approximate on purpose: one token per whitespace-separated word (prompt:
the words of every message's text; completion: the words of the reply). Tests compare them
with what the server reported, never with a real tokenizer.

Scripting (thread-safe; each script answers the next chat completion, in order):
``reply(text)``, ``reply_error(status, message)``, ``reply_slow(text, delay_per_token)``,
``hang_next()``. With nothing queued the reply is ``"Echo: " + <last user text>[:50]``.
``send_usage = False`` makes replies carry no usage (as some servers do).
``requests`` lists every request received (method, path, case-insensitive headers, parsed
JSON body; ``chat_requests`` only the chat completions); ``disconnects`` counts streams the
client abandoned mid-way: the server noticed a broken pipe or reset while writing, or the
connection closing while it waited between pieces (``wait_for_disconnects(n)`` polls).
``reset()`` clears scripts and records, zeroes ``disconnects`` and releases hung requests;
``stop()`` releases everything, closes every connection and joins every thread.
"""

from __future__ import annotations

import json
import re
import select
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

LOOPBACK = "127.0.0.1"
DEFAULT_MODELS = ("test-model",)

# A 1x1 PNG, the image every images request gets.
TINY_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
    "0000000d49444154789c63f8cfc0f01f00050001ff89993d1d0000000049454e44ae426082")
_SIZE = re.compile(r"auto|\d{2,5}x\d{2,5}")
_DISCONNECT_ERRORS = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError)
_WORD = re.compile(r"\s*\S+")


class Headers(Mapping[str, str]):
    """Request headers with case-insensitive lookup (``h["authorization"] == h["Authorization"]``)."""

    def __init__(self, items: list[tuple[str, str]]) -> None:
        self._items = list(items)
        self._map: dict[str, str] = {}
        for name, value in items:
            self._map.setdefault(name.lower(), value)

    def __getitem__(self, name: str) -> str:
        return self._map[name.lower()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._map

    def __iter__(self) -> Iterator[str]:
        return iter(self._map)

    def __len__(self) -> int:
        return len(self._map)

    def __repr__(self) -> str:
        return f"Headers({dict(self._items)!r})"


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: Headers
    body: Any  # parsed JSON, or None when there was no (valid JSON) body
    raw_body: bytes = b""
    at: float = field(default_factory=time.monotonic)

    @property
    def authorization(self) -> str | None:
        return self.headers.get("authorization")


@dataclass(frozen=True)
class Script:
    kind: str  # "text" | "error" | "hang"
    text: str = ""
    delay_per_token: float = 0.0
    status: int = 200
    message: str = ""
    error_type: str | None = None
    code: str | None = None


def split_pieces(text: str) -> list[str]:
    """The reply cut into stream pieces: each word with the whitespace before it.

    Trailing whitespace joins the last piece, so ``"".join(split_pieces(t)) == t``.
    """
    pieces = _WORD.findall(text)
    rest = text[sum(map(len, pieces)):]
    if rest:
        if pieces:
            pieces[-1] += rest
        else:
            pieces.append(rest)
    return pieces


def count_tokens(text: str) -> int:
    """Approximate token count: whitespace-separated words."""
    return len(text.split())


def _message_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            part.get("text", "") for part in content if isinstance(part, dict) and part.get("type") == "text"
        )
    return ""


def _default_error(status: int) -> tuple[str, str | None]:
    if status == 401:
        return "invalid_request_error", "invalid_api_key"
    if status == 403:
        return "invalid_request_error", "permission_denied"
    if status == 404:
        return "invalid_request_error", "model_not_found"
    if status == 429:
        return "requests", "rate_limit_exceeded"
    if status >= 500:
        return "server_error", None
    return "invalid_request_error", None


class _Stopping(Exception):
    """The server is stopping (or the test reset it): abandon this request quietly."""


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = False  # server_close() joins every handler thread
    block_on_close = True
    allow_reuse_address = True

    def __init__(self, owner: LLMServer) -> None:
        self.owner = owner
        super().__init__((LOOPBACK, 0), owner.handler_class)

    def handle_error(self, request: Any, client_address: Any) -> None:  # noqa: ARG002
        # Connections dropped by clients or by stop() are expected; stay quiet.
        return


class ModelHandler(BaseHTTPRequestHandler):
    """One connection to the model. A subclass (LLMServer.handler_class) may wrap `record`
    (a request is read), `send_json`, `write_event` (one SSE frame) and `write_raw` to stamp
    them; bench/chat_overhead.py times the model's side this way."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # small frames go out at once (no 40 ms delayed-ACK stalls)
    server: _HTTPServer

    # --- plumbing ---

    def setup(self) -> None:
        super().setup()
        self.server.owner._track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass
        finally:
            self.server.owner._untrack(self.connection)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        return

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def record(self, raw: bytes) -> RecordedRequest:
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        request = RecordedRequest(
            method=self.command,
            path=self.path,
            headers=Headers(list(self.headers.items())),
            body=body,
            raw_body=raw,
        )
        self.server.owner._record(request)
        return request

    def send_json(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    # --- routes ---

    def do_GET(self) -> None:
        self.record(b"")
        if self.path.rstrip("/") == "/v1/models":
            owner = self.server.owner
            created = int(time.time())
            self.send_json(200, {
                "object": "list",
                "data": [{"id": m, "object": "model", "created": created, "owned_by": "ledgerllm-tests"}
                         for m in owner.models],
            })
        else:
            self.send_json(404, {"error": {"message": f"no route {self.path}", "type": "invalid_request_error",
                                            "code": None}})

    def do_POST(self) -> None:
        raw = self._read_body()
        request = self.record(raw)
        if self.path.rstrip("/") in ("/v1/images/generations", "/v1/images/edits"):
            self._image(request)
            return
        if self.path.rstrip("/") != "/v1/chat/completions":
            self.send_json(404, {"error": {"message": f"no route {self.path}", "type": "invalid_request_error",
                                            "code": None}})
            return
        body = request.body if isinstance(request.body, dict) else None
        if body is None:
            self.send_json(400, {"error": {"message": "body must be a JSON object",
                                            "type": "invalid_request_error", "code": None}})
            return
        owner = self.server.owner
        script = owner.next_script(body)
        try:
            if script.kind == "hang":
                owner._hang()
                raise _Stopping
            if script.kind == "error":
                error_type, code = _default_error(script.status)
                self.send_json(script.status, {"error": {
                    "message": script.message,
                    "type": script.error_type or error_type,
                    "code": script.code if script.code is not None else code,
                }})
                return
            if body.get("stream"):
                self._stream(body, script)
            else:
                self._complete(body, script)
        except _Stopping:
            self.close_connection = True

    # --- replies ---

    def _image(self, request: RecordedRequest) -> None:
        import base64

        failure = self.server.owner._next_image_error()
        if failure is not None:
            self.send_json(failure[0], {"error": {"message": failure[1], "type": "invalid_request_error",
                                                   "code": None}})
            return
        size = request.body.get("size") if isinstance(request.body, dict) else None
        if size is None and b'name="size"' in request.raw_body:  # multipart: the size field's value
            size = request.raw_body.split(b'name="size"', 1)[1].split(b"\r\n\r\n", 1)[1].split(b"\r\n", 1)[0].decode()
        if size is not None and not _SIZE.fullmatch(str(size)):
            self.send_json(400, {"error": {"message": f"Invalid size {size!r}", "type": "invalid_request_error",
                                            "code": "invalid_size"}})
            return
        self.send_json(200, {"created": int(time.time()),
                              "data": [{"b64_json": base64.b64encode(TINY_PNG).decode()}]})

    def _usage(self, body: dict, text: str) -> dict:
        prompt = sum(count_tokens(_message_text(m.get("content"))) for m in body.get("messages") or []
                     if isinstance(m, dict))
        completion = count_tokens(text)
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}

    def _complete(self, body: dict, script: Script) -> None:
        pieces = split_pieces(script.text)
        if script.delay_per_token > 0:
            self.server.owner._sleep(script.delay_per_token * max(1, len(pieces)))
        self.send_json(200, {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", ""),
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": script.text},
                "finish_reason": "stop",
                "logprobs": None,
            }],
            **({"usage": self._usage(body, script.text)} if self.server.owner.send_usage else {}),
        })

    def _stream(self, body: dict, script: Script) -> None:
        owner = self.server.owner
        stream_options = body.get("stream_options") or {}
        include_usage = (isinstance(stream_options, dict) and bool(stream_options.get("include_usage"))
                         and owner.send_usage)
        completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        created = int(time.time())
        model = body.get("model", "")

        def chunk(delta: dict, finish_reason: str | None = None) -> dict:
            frame = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}],
            }
            if include_usage:
                frame["usage"] = None
            return frame

        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            self.write_event(chunk({"role": "assistant", "content": ""}))
            for piece in split_pieces(script.text):
                if script.delay_per_token > 0:
                    self._pause(script.delay_per_token)
                self.write_event(chunk({"content": piece}))
            self.write_event(chunk({}, "stop"))
            if include_usage:
                self.write_event({
                    "id": completion_id,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model,
                    "choices": [],
                    "usage": self._usage(body, script.text),
                })
            self._write_frame(b"data: [DONE]\n\n")
            self.write_raw(b"0\r\n\r\n")  # end of the chunked body
        except _DISCONNECT_ERRORS:
            if not owner._stopping:
                owner._count_disconnect()
            self.close_connection = True
        except OSError:
            self.close_connection = True

    def _pause(self, seconds: float) -> None:
        """Sleep between stream pieces, watching the connection: a client that closes it
        mid-stream is noticed at once (raises BrokenPipeError), as a real server would."""
        owner = self.server.owner
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            if owner._released():
                raise _Stopping
            readable, _, _ = select.select([self.connection], [], [], min(remaining, 0.05))
            if not readable:
                continue
            try:
                peeked = self.connection.recv(1, socket.MSG_PEEK)
            except _DISCONNECT_ERRORS:
                raise BrokenPipeError("client went away") from None
            if not peeked:
                raise BrokenPipeError("client went away")
            owner._sleep(max(0.0, deadline - time.monotonic()))  # the client sent more: just wait
            return

    def write_event(self, payload: dict) -> None:
        self._write_frame(b"data: " + json.dumps(payload).encode() + b"\n\n")

    def _write_frame(self, data: bytes) -> None:
        self.write_raw(b"%x\r\n%s\r\n" % (len(data), data))

    def write_raw(self, data: bytes) -> None:
        self.wfile.write(data)
        self.wfile.flush()


class LLMServer:
    """A scripted OpenAI-compatible server on loopback; see the module docstring."""

    handler_class: type[ModelHandler] = ModelHandler  # a subclass may stamp or wrap requests

    def __init__(self, models: tuple[str, ...] | list[str] = DEFAULT_MODELS) -> None:
        self.models: tuple[str, ...] = tuple(models)
        self.send_usage = True  # False: replies carry no usage (as some servers do)
        self._lock = threading.Lock()
        self._scripts: deque[Script] = deque()
        self._image_errors: deque[tuple[int, str]] = deque()
        self._requests: list[RecordedRequest] = []
        self._disconnects = 0
        self._connections: set[socket.socket] = set()
        self._release = threading.Event()  # set: hung and sleeping handlers give up
        self._stopping = False
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ---

    def start(self) -> LLMServer:
        if self._httpd is not None:
            raise RuntimeError("LLMServer already started")
        self._stopping = False
        self._release = threading.Event()
        self._httpd = _HTTPServer(self)
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"llm-server-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        with self._lock:
            self._stopping = True
            self._release.set()
        httpd.shutdown()  # no new connections from here on
        with self._lock:
            connections = list(self._connections)
        for conn in connections:  # wake handlers blocked reading an idle keep-alive connection
            _shutdown_socket(conn)
        httpd.server_close()  # closes the listener and joins every handler thread
        if thread is not None:
            thread.join()
        self._httpd = None
        self._thread = None

    def __enter__(self) -> LLMServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("LLMServer not started")
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}/v1"

    # --- scripting ---

    def reply(self, text: str) -> None:
        with self._lock:
            self._scripts.append(Script("text", text=text))

    def reply_slow(self, text: str, delay_per_token: float) -> None:
        """Stream one piece every ``delay_per_token`` seconds (non-stream: wait the total, then reply)."""
        with self._lock:
            self._scripts.append(Script("text", text=text, delay_per_token=delay_per_token))

    def reply_error(self, status: int, message: str, *, type: str | None = None,  # noqa: A002
                    code: str | None = None) -> None:
        with self._lock:
            self._scripts.append(Script("error", status=status, message=message, error_type=type, code=code))

    def reply_image_error(self, status: int, message: str) -> None:
        """Fail the next images request with ``status`` and OpenAI's error body."""
        with self._lock:
            self._image_errors.append((status, message))

    def hang_next(self) -> None:
        """Accept the next request and never answer it (released by ``reset()`` or ``stop()``)."""
        with self._lock:
            self._scripts.append(Script("hang"))

    def reset(self) -> None:
        """Forget scripts and recorded requests, zero ``disconnects``, release hung requests."""
        with self._lock:
            self._scripts.clear()
            self._image_errors.clear()
            self._requests.clear()
            self._disconnects = 0
            self.send_usage = True
            self._release.set()
            self._release = threading.Event()

    # --- observations ---

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, oldest first (a snapshot)."""
        with self._lock:
            return list(self._requests)

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == "POST" and r.path.rstrip("/") == "/v1/chat/completions"]

    @property
    def disconnects(self) -> int:
        with self._lock:
            return self._disconnects

    def wait_for_disconnects(self, count: int, timeout: float = 5.0) -> bool:
        """Wait until ``disconnects >= count``; True if it got there within ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.disconnects >= count:
                return True
            time.sleep(0.01)
        return self.disconnects >= count

    # --- used by the handlers ---

    def next_script(self, body: dict) -> Script:
        with self._lock:
            if self._scripts:
                return self._scripts.popleft()
        last_user = next((m for m in reversed(body.get("messages") or [])
                          if isinstance(m, dict) and m.get("role") == "user"), None)
        text = _message_text(last_user.get("content")) if last_user else ""
        return Script("text", text=f"Echo: {text[:50]}")

    def _next_image_error(self) -> tuple[int, str] | None:
        with self._lock:
            return self._image_errors.popleft() if self._image_errors else None

    @property
    def image_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == "POST" and r.path.startswith("/v1/images/")]

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def _count_disconnect(self) -> None:
        with self._lock:
            self._disconnects += 1

    def _hang(self) -> None:
        with self._lock:
            release = self._release
        release.wait()

    def _released(self) -> bool:
        with self._lock:
            return self._release.is_set()

    def _sleep(self, seconds: float) -> None:
        with self._lock:
            release = self._release
        if release.wait(seconds):
            raise _Stopping

    def _track(self, conn: socket.socket) -> None:
        with self._lock:
            self._connections.add(conn)
            stopping = self._stopping
        if stopping:
            _shutdown_socket(conn)

    def _untrack(self, conn: socket.socket) -> None:
        with self._lock:
            self._connections.discard(conn)


def _shutdown_socket(conn: socket.socket) -> None:
    try:
        conn.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


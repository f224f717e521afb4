"""The LLM port adapter: chat completions (whole or streamed) through litellm.

litellm's real code path does the work (provider routing, request shaping, SSE parsing);
this module adds what the application needs on top of it:

* **Lazy, offline import.** Importing litellm takes seconds and, without
  ``LITELLM_LOCAL_MODEL_COST_MAP``, reaches for the network. It is imported on the first
  call, with telemetry and its debug hints off. Importing this module costs nothing.
* **No retries, no hidden latency.** ``num_retries=0`` (which litellm also turns into the
  OpenAI SDK's ``max_retries=0``) and ``drop_params=True`` (parameters a provider does not
  support are dropped instead of failing the call).
* **Bounded time.** ``config.timeout`` is litellm's (httpx's) timeout for connecting and for
  every read, so a silent server fails the call within ``timeout``. ``complete`` is
  additionally bounded as a whole: it returns or raises within ``timeout`` even if the
  server trickles bytes (the call runs on a helper thread; one that overruns is abandoned
  and ends at its own next read timeout). A stream is bounded per gap: its first chunk and
  every later one must come within ``timeout`` (a stream that keeps producing text may run
  longer than ``timeout`` in total).
* **Cancellation that reaches the server.** ``stream(..., cancel=event)``: once the event
  is set the adapter stops reading and closes the HTTP response, which closes its TCP
  connection, so the upstream server sees the client go away and can stop generating.
  While the consumer is blocked waiting for the next chunk, a watchdog thread shuts the
  socket down within ~20 ms of the event (see ``_StreamGuard``). Only before the response
  headers arrive (inside ``litellm.completion``) is there no socket to reach yet: the
  cancel then takes effect as soon as they do. Closing the generator early
  (``break``, ``.close()``) also closes the response.
* **Safe errors.** Every failure becomes ``CompletionError`` with ``kind`` in
  {"provider", "timeout", "config", "cancelled"}, the HTTP status when there was one, and a
  short message that never contains the API key (scrubbed, along with anything shaped like
  a bearer token or an ``sk-`` key).

How the HTTP response is reached (litellm internals this module relies on): for the
``openai`` provider, ``litellm.completion(stream=True)`` returns a ``CustomStreamWrapper``
whose ``completion_stream`` is the OpenAI SDK's ``openai.Stream``, whose ``.response`` is the
``httpx.Response``. For providers served by litellm's own HTTP handler (ollama, ...),
``completion_stream`` is a ``BaseModelResponseIterator`` whose ``streaming_response`` is the
``httpx.Response.iter_lines()`` generator (the response is that generator frame's ``self``);
``_find_response`` looks in both places. The socket comes from httpcore's
``response.extensions["network_stream"].get_extra_info("socket")``.
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import copy
import functools
import inspect
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import msgspec

if TYPE_CHECKING:  # pragma: no cover
    import httpx

KINDS = frozenset({"provider", "timeout", "config", "cancelled"})

# --- public types ------------------------------------------------------------------------


class CompletionError(Exception):
    """A failed completion. ``message`` is safe to show (never holds the API key); ``status``
    is the provider's HTTP status when it answered; ``kind`` is provider, timeout, config or
    cancelled."""

    def __init__(self, message: str, kind: str = "provider", status: int | None = None) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown CompletionError kind {kind!r}")
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.status = status

    def __repr__(self) -> str:
        return f"CompletionError(kind={self.kind!r}, status={self.status!r}, message={self.message!r})"


class Usage(msgspec.Struct, frozen=True):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class Completion(msgspec.Struct, frozen=True):
    text: str
    usage: Usage
    model: str  # the model the provider says answered (config.model when it says nothing)
    finish_reason: str
    duration: float  # seconds, wall clock, for the whole call


class StreamEvent(msgspec.Struct, frozen=True):
    text: str = ""
    done: bool = False
    usage: Usage | None = None
    finish_reason: str | None = None


class LLMConfig(msgspec.Struct, frozen=True):
    model: str  # a litellm model string: openai/<name> (with api_base), ollama/<name>, ...
    api_base: str | None = None
    api_key: str | None = None
    timeout: float = 120.0

    def __repr__(self) -> str:  # never print the key
        key = "None" if self.api_key is None else "'***'"
        return (f"LLMConfig(model={self.model!r}, api_base={self.api_base!r}, api_key={key}, "
                f"timeout={self.timeout!r})")

    __str__ = __repr__


# --- litellm, imported lazily ------------------------------------------------------------

_import_lock = threading.Lock()
_litellm: Any = None


def load_litellm() -> Any:
    """Import and configure litellm once (offline cost map, bundled tiktoken files, no
    telemetry, no debug hints)."""
    global _litellm
    if _litellm is None:
        with _import_lock:
            if _litellm is None:
                from infrastructure.tokenizer import configure_offline

                configure_offline()  # offline cost map, tiktoken files from litellm's own copy
                import litellm

                litellm.telemetry = False
                litellm.suppress_debug_info = True
                _litellm = litellm
    return _litellm


# --- the adapter -------------------------------------------------------------------------


class LiteLLMCompletions:
    """Chat completions through litellm; thread-safe (keep one per process)."""

    def complete(
        self,
        config: LLMConfig,
        messages: list[dict],
        *,
        temperature: float | None = None,
        max_tokens: int | None = None,
    ) -> Completion:
        kwargs = self._kwargs(config, messages, temperature, max_tokens)
        litellm = load_litellm()
        started = time.monotonic()
        try:
            response = _call_with_deadline(lambda: litellm.completion(**kwargs), config.timeout)
        except _DeadlineExceeded:
            raise CompletionError(
                f"The LLM ({_safe_model(config)}) did not answer within {config.timeout:g} s.", "timeout"
            ) from None
        except CompletionError:
            raise
        except Exception as e:  # noqa: BLE001 - every provider failure is mapped
            raise _map_error(e, config) from None
        duration = time.monotonic() - started
        try:
            choice = response.choices[0]
            text = choice.message.content or ""
            finish_reason = choice.finish_reason or "stop"
        except (AttributeError, IndexError, TypeError):
            raise CompletionError(
                f"The LLM ({_safe_model(config)}) sent a reply without a message.", "provider"
            ) from None
        usage = _usage_from(getattr(response, "usage", None)) or _estimate_usage(messages, text)
        model = getattr(response, "model", None) or config.model
        return Completion(text=text, usage=usage, model=str(model), finish_reason=str(finish_reason),
                          duration=duration)

    def stream(
        self,
        config: LLMConfig,
        messages: list[dict],
        *,
        temperature: float | None = None,
        max_tokens: int | None = None,
        cancel: threading.Event | None = None,
    ) -> Iterator[StreamEvent]:
        """Text deltas as they arrive, then one ``done=True`` event with usage and finish
        reason. Closing the generator early (or setting ``cancel``) closes the HTTP response."""
        kwargs = self._kwargs(config, messages, temperature, max_tokens)
        kwargs["stream"] = True
        kwargs["stream_options"] = {"include_usage": True}
        litellm = load_litellm()
        guard = _StreamGuard(cancel, config.timeout)
        guard.check(config)  # cancelled before it began: send nothing
        _watchdog.add(guard)
        try:
            guard.enter_wait()
            try:
                wrapper = litellm.completion(**kwargs)
            except Exception as e:  # noqa: BLE001
                raise guard.error(e, config) from None
            finally:
                guard.leave_wait()
            guard.attach(wrapper)
            parts: list[str] = []
            usage: Usage | None = None
            finish_reason: str | None = None
            chunks = iter(wrapper)
            while True:
                guard.check(config)
                guard.enter_wait()
                try:
                    chunk = next(chunks)
                except StopIteration:
                    break
                except Exception as e:  # noqa: BLE001
                    raise guard.error(e, config) from None
                finally:
                    guard.leave_wait()
                guard.attach(wrapper)  # providers that open the response lazily, on the first read
                usage = _usage_from(getattr(chunk, "usage", None)) or usage
                for choice in getattr(chunk, "choices", None) or ():
                    if getattr(choice, "index", 0) not in (0, None):
                        continue
                    if getattr(choice, "finish_reason", None):
                        finish_reason = str(choice.finish_reason)
                    delta = getattr(choice, "delta", None)
                    text = getattr(delta, "content", None) if delta is not None else None
                    if text:
                        guard.check(config)
                        parts.append(text)
                        yield StreamEvent(text=text)
            guard.check(config)
            yield StreamEvent(
                done=True,
                usage=usage or _estimate_usage(messages, "".join(parts)),
                finish_reason=finish_reason or "stop",
            )
        finally:
            _watchdog.remove(guard)
            guard.close()

    # --- helpers ---

    @staticmethod
    def _kwargs(config: LLMConfig, messages: list[dict], temperature: float | None,
                max_tokens: int | None) -> dict[str, Any]:
        if not isinstance(config.model, str) or not config.model.strip():
            raise CompletionError("No LLM model is configured.", "config")
        if not (isinstance(config.timeout, int | float) and config.timeout > 0):
            raise CompletionError("The LLM timeout must be a positive number of seconds.", "config")
        if not isinstance(messages, list) or not messages:
            raise CompletionError("A completion needs at least one message.", "config")
        _check_provider(config)
        kwargs: dict[str, Any] = {
            "model": config.model,
            # litellm may rewrite messages in place; the caller's list stays untouched
            "messages": copy.deepcopy(messages),
            "timeout": float(config.timeout),
            "num_retries": 0,
            "drop_params": True,
        }
        if config.api_base:
            kwargs["api_base"] = config.api_base
        if config.api_key:
            kwargs["api_key"] = config.api_key
        if temperature is not None:
            kwargs["temperature"] = temperature
        if max_tokens is not None:
            kwargs["max_tokens"] = max_tokens
        return kwargs


_provider_cache: dict[tuple[str, str | None], str] = {}


def _check_provider(config: LLMConfig) -> str:
    """litellm's provider for the model string (cached), or a config error naming the problem."""
    key = (config.model, config.api_base)
    provider = _provider_cache.get(key)
    if provider is None:
        litellm = load_litellm()
        try:
            _, provider, _, _ = litellm.get_llm_provider(model=config.model, api_base=config.api_base)
        except Exception:  # noqa: BLE001
            raise CompletionError(
                f"Unknown LLM model {_scrub(config.model, config.api_key)!r}: use a litellm model string "
                "with its provider, such as openai/<name> (with an API base for OpenAI-compatible "
                "servers) or ollama/<name>.",
                "config",
            ) from None
        if len(_provider_cache) < 1024:
            _provider_cache[key] = provider
    return provider


# --- whole-call deadline for complete() ---------------------------------------------------


class _DeadlineExceeded(Exception):
    pass


def _call_with_deadline(fn: Any, timeout: float) -> Any:
    """Run ``fn`` on a helper thread and wait at most ``timeout`` seconds for it.

    httpx bounds each read by ``timeout`` too, so an abandoned call ends soon after by itself.
    """
    context = contextvars.copy_context()
    future = _calls().submit(context.run, fn)
    try:
        return future.result(timeout)
    except concurrent.futures.TimeoutError:
        raise _DeadlineExceeded from None


@functools.lru_cache(maxsize=1)
def _calls() -> concurrent.futures.ThreadPoolExecutor:
    """Long-lived threads for sync calls (a new thread per call cost a few ms under load)."""
    return concurrent.futures.ThreadPoolExecutor(max_workers=32, thread_name_prefix="llm-complete")


# --- streams: cancellation and stall detection -------------------------------------------


class _StreamGuard:
    """One stream's HTTP response, and the means to abort it from another thread.

    The consumer thread calls ``attach`` once litellm has opened the response, brackets every
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
        self._searched = False

    # consumer side

    def attach(self, wrapper: Any) -> None:
        if self.response is not None or self._searched and not _lazy(wrapper):
            return
        self._searched = True
        response = _find_response(wrapper)
        if response is None:
            return
        sock = None
        try:
            stream = response.extensions.get("network_stream")
            sock = stream.get_extra_info("socket") if stream is not None else None
        except Exception:  # noqa: BLE001 - best effort: without it, cancel acts between chunks
            sock = None
        with self.lock:
            self.response = response
            self.sock = sock if isinstance(sock, socket.socket) else None
            if getattr(response, "is_closed", False):
                self.released = True
            else:
                response.stream = _guarded_stream_class()(response.stream, self)

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
        return _map_error(e, config)

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
                f"The LLM ({_safe_model(config)}) stopped sending for more than {config.timeout:g} s.", "timeout"
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
        def __init__(self, inner: Any, guard: _StreamGuard) -> None:
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
        self._guards: set[_StreamGuard] = set()
        self._thread: threading.Thread | None = None

    def add(self, guard: _StreamGuard) -> None:
        with self._cond:
            self._guards.add(guard)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="llm-stream-watchdog", daemon=True)
                self._thread.start()
            self._cond.notify()

    def remove(self, guard: _StreamGuard) -> None:
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


_watchdog = _Watchdog()


def _lazy(wrapper: Any) -> bool:
    """litellm opens some providers' responses on the first read (``make_call``)."""
    return getattr(wrapper, "make_call", None) is not None


def _find_response(wrapper: Any) -> httpx.Response | None:
    """The ``httpx.Response`` behind a litellm stream (see the module docstring)."""
    import httpx

    seen: set[int] = set()
    todo: list[tuple[Any, int]] = [(wrapper, 0)]
    while todo:
        obj, depth = todo.pop()
        if obj is None or id(obj) in seen or depth > 4:
            continue
        seen.add(id(obj))
        if isinstance(obj, httpx.Response):
            return obj
        if inspect.isgenerator(obj):
            frame = obj.gi_frame
            if frame is not None:
                todo.extend((v, depth + 1) for v in frame.f_locals.values()
                            if isinstance(v, httpx.Response) or inspect.isgenerator(v))
            continue
        for name in ("response", "http_response", "completion_stream", "streaming_response",
                     "response_iterator", "_stream_iter"):
            try:
                value = getattr(obj, name, None)
            except Exception:  # noqa: BLE001
                value = None
            if value is not None and not isinstance(value, str | bytes):
                todo.append((value, depth + 1))
    return None


# --- usage -------------------------------------------------------------------------------


def _usage_from(raw: Any) -> Usage | None:
    if raw is None:
        return None
    get = raw.get if isinstance(raw, dict) else (lambda name: getattr(raw, name, None))
    prompt, completion, total = get("prompt_tokens"), get("completion_tokens"), get("total_tokens")
    if not isinstance(prompt, int) or not isinstance(completion, int):
        return None
    if prompt == 0 and completion == 0:
        return None  # some servers send zeros when they do not count
    return Usage(prompt, completion, total if isinstance(total, int) and total > 0 else prompt + completion)


def _estimate_usage(messages: list[dict], text: str) -> Usage:
    """cl100k_base counts when the provider reports none (a few tokens per message added for
    the chat format; images are not counted)."""
    prompt = sum(_count(_content_text(m.get("content"))) + 4 for m in messages if isinstance(m, dict))
    completion = _count(text)
    return Usage(prompt, completion, prompt + completion)


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p.get("text", "") for p in content
                         if isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str))
    return ""


def _count(text: str) -> int:
    if not text:
        return 0
    try:
        from infrastructure.tokenizer import get_encoding

        return len(get_encoding().encode_ordinary(text))
    except Exception:  # noqa: BLE001 - an estimate must never fail
        return max(1, len(text) // 4)


# --- errors ------------------------------------------------------------------------------

_MAX_MESSAGE = 400
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=\-]+")
_SK_KEY = re.compile(r"\bsk-[A-Za-z0-9_\-]{6,}")
_KEY_PARAM = re.compile(
    r"(?i)(\b(?:api[_-]?key|x-api-key|access[_-]?token|auth[_-]?token|secret)[\"']?\s*[:=]\s*[\"']?)"
    r"[^\s\"'&,}]+"
)
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/@\s]+@")
_LITELLM_PREFIX = re.compile(r"^(?:litellm\.\w+:\s*)?(?:\w+Error:\s*)?(?:\w+Exception\s*-\s*)?")


def _scrub(text: str, api_key: str | None) -> str:
    if api_key and len(api_key) >= 4:
        text = text.replace(api_key, "[redacted]")
    text = _BEARER.sub(lambda m: f"{m.group(1)} [redacted]", text)
    text = _SK_KEY.sub("sk-[redacted]", text)
    text = _URL_USERINFO.sub(lambda m: f"{m.group(1)}[redacted]@", text)
    return _KEY_PARAM.sub(lambda m: f"{m.group(1)}[redacted]", text)


def _safe_model(config: LLMConfig) -> str:
    return _scrub(config.model, config.api_key)


def _chain(e: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    seen: set[int] = set()
    cur: BaseException | None = e
    while cur is not None and id(cur) not in seen and len(out) < 12:
        seen.add(id(cur))
        out.append(cur)
        cur = cur.__cause__ or cur.__context__
    return out


def _provider_text(e: BaseException) -> str:
    """The provider's own words, without litellm's ``litellm.XError: XError: OpenAIException -``
    prefixes and without its long tails (original exception dumps, help links)."""
    text = getattr(e, "message", None)
    if not isinstance(text, str) or not text:
        text = str(e)
    text = text.strip()
    for _ in range(4):  # "litellm.MidStreamFallbackError: litellm.APIConnectionError: ..." nests
        stripped = _LITELLM_PREFIX.sub("", text, count=1)
        if stripped == text:
            break
        text = stripped
    for marker in (" Original exception:", "Original exception", " LiteLLM Retried:", "\nReceived Model Group",
                   " Received Model Group", "Give Feedback / Get Help"):
        cut = text.find(marker)
        if cut > 0:
            text = text[:cut]
    text = " ".join(text.split())
    if text.startswith("{"):  # a raw JSON error body: keep its message
        try:
            body = json.loads(text)
            inner = body.get("error", body) if isinstance(body, dict) else None
            message = inner.get("message") if isinstance(inner, dict) else inner
            if isinstance(message, str) and message:
                text = message
        except ValueError:
            pass
    return text


def _map_error(e: BaseException, config: LLMConfig) -> CompletionError:
    """A litellm (or SDK, or httpx) exception as a CompletionError with a safe message."""
    import httpx
    import openai

    litellm = load_litellm()
    model = _safe_model(config)
    chain = _chain(e)
    # litellm wraps a mid-stream failure in MidStreamFallbackError; look at what it wraps.
    original = getattr(e, "original_exception", None)
    if isinstance(original, BaseException):
        chain = _chain(original) + chain

    def done(message: str, kind: str, status: int | None = None) -> CompletionError:
        message = _scrub(message, config.api_key)
        if len(message) > _MAX_MESSAGE:
            message = message[: _MAX_MESSAGE - 1] + "…"
        return CompletionError(message, kind, status)

    if any(isinstance(x, litellm.Timeout | openai.APITimeoutError | httpx.TimeoutException | TimeoutError)
           for x in chain):
        return done(f"The LLM ({model}) did not answer within {config.timeout:g} s.", "timeout")

    # The provider's HTTP status, only from a response that came off the wire: litellm
    # invents 500 responses for local failures (connection refused, missing credentials).
    wire = next((x for x in chain if _wire_response(x) is not None), None)
    status = _wire_response(wire).status_code if wire is not None else None
    detail = _provider_text(original if isinstance(original, BaseException) else e)

    if status is not None:
        label = _STATUS_LABELS.get(status) or ("The LLM provider failed" if status >= 500
                                               else "The LLM provider refused the request")
        return done(f"{label} (HTTP {status}, {model}): {detail}", "provider", status)

    connection = next((x for x in chain if isinstance(
        x, litellm.APIConnectionError | openai.APIConnectionError | httpx.TransportError | ConnectionError)), None)
    if connection is not None:
        where = _scrub(config.api_base, config.api_key) if config.api_base else "the provider's default endpoint"
        cause = next((x for x in chain if isinstance(x, httpx.TransportError | ConnectionError)), None)
        why = _provider_text(cause) if cause is not None else detail
        return done(f"The connection to the LLM ({model}) at {where} failed: {why}", "provider")

    if any(isinstance(x, openai.OpenAIError) and not isinstance(x, openai.APIError) for x in chain) \
            and re.search(r"(?i)api[_ ]?key|credential", detail):
        return done(f"The LLM ({model}) needs an API key and none is configured: {detail}", "config")
    if "LLM Provider NOT provided" in detail:
        return done(f"Unknown LLM model {model!r}: use a litellm model string with its provider.", "config")
    return done(f"The LLM call failed ({model}): {detail}", "provider")


def _wire_response(e: BaseException | None) -> Any:
    """The httpx.Response an exception carries, if it was read from the network (httpcore
    marks those with an ``http_version`` extension)."""
    response = getattr(e, "response", None)
    try:
        return response if response is not None and response.extensions.get("http_version") else None
    except Exception:  # noqa: BLE001
        return None


_STATUS_LABELS = {
    400: "The LLM provider rejected the request",
    401: "The LLM provider rejected the API key",
    403: "The LLM provider denied access",
    404: "The LLM provider does not know this model or endpoint",
    408: "The LLM provider timed out",
    413: "The request is too large for the LLM provider",
    422: "The LLM provider could not process the request",
    429: "The LLM provider is rate limiting or out of quota",
    500: "The LLM provider failed",
    502: "The LLM provider's gateway failed",
    503: "The LLM provider is unavailable",
    504: "The LLM provider's gateway timed out",
}

"""The LLM adapter's public types (results, stream events, the call's config, its one error),
token usage (the provider's figures, or an estimate when it sent none), litellm's lazy,
offline import and the HTTP client it is given."""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

import msgspec

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
# litellm's own switch: OpenAI-compatible chat goes through litellm's HTTP handler instead of
# the openai SDK, whose request "transform" walks every message through each TypedDict of a
# union: 8 ms for 20 messages and 0.9 s for 2,000 here (bench/chat_overhead.py). The operator
# can still set it to false to go through the SDK.
SDK_BYPASS = "EXPERIMENTAL_OPENAI_BASE_LLM_HTTP_HANDLER"


def load_litellm() -> Any:
    """Import and configure litellm once (offline cost map, bundled tiktoken files, no
    telemetry, no debug hints)."""
    global _litellm
    if _litellm is None:
        with _import_lock:
            if _litellm is None:
                from infrastructure.tokenizer import configure_offline

                configure_offline()  # offline cost map, tiktoken files from litellm's own copy
                os.environ.setdefault(SDK_BYPASS, "true")
                import litellm

                litellm.telemetry = False
                litellm.suppress_debug_info = True
                # No litellm logging callbacks are used: its per-chunk stream logging cost about
                # 0.9 ms a chunk (a 20-chunk stream 57 -> 39 ms), and messages stay out of its logs.
                litellm.disable_streaming_logging = True
                litellm.turn_off_message_logging = True
                litellm.client_session = http_client()  # what the openai SDK path uses
                _litellm = litellm
    return _litellm


# --- the HTTP client litellm is given ----------------------------------------------------

# Set while a stream opens or reads (infrastructure/llm_streams.py): the client's transport
# hands it each response opened meanwhile, in this context, so a cancel can reach the socket.
response_taker: ContextVar[Callable[[Any, Any], Any] | None] = ContextVar("ledgerllm_response_taker", default=None)


@functools.cache
def http_client() -> Any:
    """The process's one `httpx.Client` for LLM calls: litellm gets it through its public
    knobs (`client=` an `HTTPHandler` around it, and `litellm.client_session` for the openai
    SDK path), so every response passes through our transport. Cookies a provider sets are
    dropped (one client serves every user); timeouts are set per call."""
    import http.cookiejar

    import httpx

    class Transport(httpx.BaseTransport):
        def __init__(self) -> None:
            self._inner = httpx.HTTPTransport(limits=httpx.Limits(max_connections=1000, max_keepalive_connections=100))

        def handle_request(self, request: httpx.Request) -> httpx.Response:
            response = self._inner.handle_request(request)
            take = response_taker.get()
            return response if take is None else take(request, response)

        def close(self) -> None:
            self._inner.close()

    no_cookies = http.cookiejar.CookieJar(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
    return httpx.Client(transport=Transport(), timeout=httpx.Timeout(600.0, connect=5.0), follow_redirects=True,
                        cookies=no_cookies)


def litellm_client() -> Any:
    """The `client=` for litellm.completion: litellm's HTTP handler around `http_client()`. None
    when the operator turned the openai SDK path back on (SDK_BYPASS false): that path takes an
    SDK client there, and gets ours through `litellm.client_session` instead."""
    load_litellm()  # sets SDK_BYPASS's default
    if os.environ.get(SDK_BYPASS, "").strip().lower() != "true":
        return None
    return _handler()


@functools.cache
def _handler() -> Any:
    from litellm.llms.custom_httpx.http_handler import HTTPHandler

    return HTTPHandler(client=http_client())


# --- usage: the provider's figures, or an estimate when it sent none ---------------------


def usage_from(raw: Any) -> Usage | None:
    if raw is None:
        return None
    get = raw.get if isinstance(raw, dict) else (lambda name: getattr(raw, name, None))
    prompt, completion, total = get("prompt_tokens"), get("completion_tokens"), get("total_tokens")
    if not isinstance(prompt, int) or not isinstance(completion, int):
        return None
    if prompt == 0 and completion == 0:
        return None  # some servers send zeros when they do not count
    return Usage(prompt, completion, total if isinstance(total, int) and total > 0 else prompt + completion)


def estimate_usage(messages: list[dict], text: str) -> Usage:
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

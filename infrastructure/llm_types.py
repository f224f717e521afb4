"""The LLM adapter's public types (results, stream events, the call's config, its one error),
token usage (the provider's figures, or an estimate when it sent none) and litellm's lazy,
offline import."""

from __future__ import annotations

import os
import threading
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
                _litellm = litellm
    return _litellm


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

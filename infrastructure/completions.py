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
  socket down within ~20 ms of the event (see ``StreamGuard``). Only before the response
  headers arrive (inside ``litellm.completion``) is there no socket to reach yet: the
  cancel then takes effect as soon as they do. Closing the generator early
  (``break``, ``.close()``) also closes the response.
* **Safe errors.** Every failure becomes ``CompletionError`` with ``kind`` in
  {"provider", "timeout", "config", "cancelled"}, the HTTP status when there was one, and a
  short message that never contains the API key (scrubbed, along with anything shaped like
  a bearer token or an ``sk-`` key).

How the HTTP response is reached, through public APIs only: litellm is given our own
``httpx.Client`` (``llm_types.http_client``): as ``client=HTTPHandler(client=...)`` on every
call, which litellm's HTTP handler uses for OpenAI-compatible chat (the SDK bypass) and for
the providers it serves itself (ollama, ...), and as ``litellm.client_session``, which the
openai SDK path uses when an operator turns the bypass off. The client's transport hands each
response it opens to the stream's guard (a context variable set while the stream opens and
reads). The socket comes from httpcore's documented ``network_stream`` extension. Providers
that reach the network another way still stop at the next chunk and within the read timeout.

The parts live beside it: `llm_types` (results, config, error, usage, the lazy import),
`llm_streams` (cancellation and stall detection) and `llm_errors` (error mapping and scrubbing).
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import functools
import threading
import time
from collections.abc import Iterator
from typing import Any

from infrastructure.llm_errors import map_error, safe_model, scrub
from infrastructure.llm_streams import StreamGuard, stream_watchdog
from infrastructure.llm_types import (
    KINDS, Completion, CompletionError, LLMConfig, StreamEvent, Usage, estimate_usage, litellm_client, load_litellm,
    usage_from,
)

__all__ = ["KINDS", "Completion", "CompletionError", "LLMConfig", "LiteLLMCompletions", "StreamEvent", "Usage",
           "load_litellm", "scrub"]

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
                f"The LLM ({safe_model(config)}) did not answer within {config.timeout:g} s.", "timeout"
            ) from None
        except CompletionError:
            raise
        except Exception as e:  # noqa: BLE001 - every provider failure is mapped
            raise map_error(e, config) from None
        duration = time.monotonic() - started
        try:
            choice = response.choices[0]
            text = choice.message.content or ""
            finish_reason = choice.finish_reason or "stop"
        except (AttributeError, IndexError, TypeError):
            raise CompletionError(
                f"The LLM ({safe_model(config)}) sent a reply without a message.", "provider"
            ) from None
        usage = usage_from(getattr(response, "usage", None)) or estimate_usage(messages, text)
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
        guard = StreamGuard(cancel, config.timeout)
        guard.check(config)  # cancelled before it began: send nothing
        stream_watchdog.add(guard)
        try:
            guard.enter_wait()
            try:
                with guard.opening():
                    wrapper = litellm.completion(**kwargs)
            except Exception as e:  # noqa: BLE001
                raise guard.error(e, config) from None
            finally:
                guard.leave_wait()
            parts: list[str] = []
            usage: Usage | None = None
            finish_reason: str | None = None
            chunks = iter(wrapper)
            while True:
                guard.check(config)
                guard.enter_wait()
                try:
                    with guard.opening():  # some providers open the response on the first read
                        chunk = next(chunks)
                except StopIteration:
                    break
                except Exception as e:  # noqa: BLE001
                    raise guard.error(e, config) from None
                finally:
                    guard.leave_wait()
                usage = usage_from(getattr(chunk, "usage", None)) or usage
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
                usage=usage or estimate_usage(messages, "".join(parts)),
                finish_reason=finish_reason or "stop",
            )
        finally:
            stream_watchdog.remove(guard)
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
            "messages": _copy_messages(messages),
            "timeout": float(config.timeout),
            "num_retries": 0,
            "drop_params": True,
        }
        if config.api_base:
            kwargs["api_base"] = config.api_base
        if config.api_key:
            kwargs["api_key"] = config.api_key
        client = litellm_client()
        if client is not None:
            kwargs["client"] = client
        if temperature is not None:
            kwargs["temperature"] = temperature
        if max_tokens is not None:
            kwargs["max_tokens"] = max_tokens
        return kwargs


def _copy_messages(messages: list[dict]) -> list[dict]:
    """A copy deep enough for litellm to rewrite: each message and each content part (an
    image part's `image_url` too). Strings are immutable; `copy.deepcopy` of a long history
    cost milliseconds per chat (its memo walks every object)."""
    copied = []
    for message in messages:
        message = dict(message)
        content = message.get("content")
        if isinstance(content, list):
            message["content"] = [{k: dict(v) if isinstance(v, dict) else v for k, v in part.items()}
                                  if isinstance(part, dict) else part for part in content]
        copied.append(message)
    return copied


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
                f"Unknown LLM model {scrub(config.model, config.api_key)!r}: use a litellm model string "
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

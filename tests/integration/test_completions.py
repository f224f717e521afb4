"""The litellm adapter against a real OpenAI-compatible server on loopback.

Nothing is mocked: every call goes through litellm's own code path and the OpenAI SDK over
HTTP to ``harness.llm_server.LLMServer``, which records what it received.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Iterator

import pytest

from harness.llm_server import LLMServer, count_tokens
from infrastructure.completions import (
    Completion,
    CompletionError,
    LiteLLMCompletions,
    LLMConfig,
    StreamEvent,
    Usage,
)
from infrastructure.llm_types import SDK_BYPASS, load_litellm

API_KEY = "sk-test-0123456789abcdefSECRET"
MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Say hello to the tests"},
]


@pytest.fixture(scope="module")
def server() -> Iterator[LLMServer]:
    srv = LLMServer(models=["test-model", "other-model"]).start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(autouse=True)
def fresh(server: LLMServer) -> None:
    server.reset()


@pytest.fixture(scope="module")
def completions(server: LLMServer) -> LiteLLMCompletions:
    adapter = LiteLLMCompletions()
    # Import litellm and let it build its lazy stream machinery now, so no test times that.
    adapter.complete(config(server), MESSAGES)
    collect(adapter.stream(config(server), MESSAGES))
    return adapter


def config(server: LLMServer, timeout: float = 10.0, **overrides) -> LLMConfig:
    fields = {"model": "openai/test-model", "api_base": server.base_url, "api_key": API_KEY, "timeout": timeout}
    return LLMConfig(**{**fields, **overrides})


def collect(events: Iterator[StreamEvent]) -> list[StreamEvent]:
    return list(events)


# --- whole completions ---


def test_complete_returns_the_scripted_text_and_usage(server: LLMServer, completions: LiteLLMCompletions) -> None:
    server.reply("Hello there, dear tests!")
    result = completions.complete(config(server), MESSAGES)
    assert isinstance(result, Completion)
    assert result.text == "Hello there, dear tests!"
    assert result.finish_reason == "stop"
    assert result.model == "test-model"
    prompt = count_tokens("You are terse.") + count_tokens("Say hello to the tests")
    assert result.usage == Usage(prompt_tokens=prompt, completion_tokens=4, total_tokens=prompt + 4)
    assert 0 < result.duration < 5


def test_the_server_receives_our_messages_model_parameters_and_key(
        server: LLMServer, completions: LiteLLMCompletions) -> None:
    messages = copy.deepcopy(MESSAGES)
    completions.complete(config(server), messages, temperature=0.25, max_tokens=64)
    assert messages == MESSAGES  # the caller's list is left alone
    (request,) = server.chat_requests  # one request: no retries, no probing
    assert request.method == "POST" and request.path == "/v1/chat/completions"
    assert request.headers["Authorization"] == f"Bearer {API_KEY}"
    body = request.body
    assert body["model"] == "test-model"  # litellm strips the openai/ prefix
    assert body["messages"] == MESSAGES
    assert body["temperature"] == 0.25
    assert body["max_tokens"] == 64
    assert not body.get("stream")


def test_default_reply_echoes_the_last_user_message(server: LLMServer, completions: LiteLLMCompletions) -> None:
    result = completions.complete(config(server), [{"role": "user", "content": "x" * 80}])
    assert result.text == "Echo: " + "x" * 50


def test_image_parts_reach_the_server_intact(server: LLMServer, completions: LiteLLMCompletions) -> None:
    image = ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGD4"
             "DwABBAEAwS2OUAAAAABJRU5ErkJggg==")
    messages = [{"role": "user", "content": [
        {"type": "text", "text": "What is in this picture?"},
        {"type": "image_url", "image_url": {"url": image}},
    ]}]
    server.reply("A single pixel.")
    assert completions.complete(config(server), messages).text == "A single pixel."
    assert server.chat_requests[0].body["messages"] == messages


def test_two_concurrent_completions_both_succeed_in_parallel(server: LLMServer, completions: LiteLLMCompletions) -> None:
    server.reply_slow("one two three four five", 0.1)  # 0.5 s each
    server.reply_slow("one two three four five", 0.1)
    results: list[Completion | BaseException] = []

    def run() -> None:
        try:
            results.append(completions.complete(config(server), MESSAGES))
        except BaseException as e:  # noqa: BLE001 - reported below
            results.append(e)

    started = time.monotonic()
    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    elapsed = time.monotonic() - started
    assert [r.text for r in results] == ["one two three four five"] * 2  # type: ignore[union-attr]
    assert elapsed < 0.95, f"the two calls were serialized ({elapsed:.2f} s)"


# --- streaming ---


def test_stream_yields_deltas_as_they_arrive(server: LLMServer, completions: LiteLLMCompletions) -> None:
    text = "The quick brown fox jumps over the lazy dog"
    server.reply_slow(text, 0.05)  # 9 pieces, ~0.45 s
    started = time.monotonic()
    first_at = None
    events = []
    for event in completions.stream(config(server), MESSAGES, temperature=0.5):
        if first_at is None and event.text:
            first_at = time.monotonic() - started
        events.append(event)
    total = time.monotonic() - started
    deltas = [e.text for e in events if not e.done]
    assert len(deltas) >= 5
    assert "".join(deltas) == text
    assert first_at is not None and first_at < total / 2, (first_at, total)
    last = events[-1]
    assert last.done and last.text == "" and last.finish_reason == "stop"
    assert last.usage is not None and last.usage.completion_tokens == 9
    assert sum(e.done for e in events) == 1
    body = server.chat_requests[0].body
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["temperature"] == 0.5 and body["model"] == "test-model"


def test_stream_estimates_usage_when_the_server_sends_none(server: LLMServer, completions: LiteLLMCompletions) -> None:
    server.send_usage = False
    server.reply("four little words here")
    events = collect(completions.stream(config(server), MESSAGES))
    usage = events[-1].usage
    assert usage is not None and usage.completion_tokens > 0 and usage.prompt_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_complete_estimates_usage_when_the_server_sends_none(server: LLMServer, completions: LiteLLMCompletions) -> None:
    server.send_usage = False
    server.reply("four little words here")
    usage = completions.complete(config(server), MESSAGES).usage
    assert usage.completion_tokens > 0 and usage.prompt_tokens > 0


# --- errors ---


@pytest.mark.parametrize("status", [500, 401, 429, 404, 400])
def test_provider_errors_carry_the_status_and_never_the_key(
        server: LLMServer, completions: LiteLLMCompletions, status: int) -> None:
    server.reply_error(status, f"Incorrect API key provided: {API_KEY} (status {status})")
    with pytest.raises(CompletionError) as info:
        completions.complete(config(server), MESSAGES)
    error = info.value
    assert error.kind == "provider" and error.status == status
    assert str(status) in error.message
    assert "Incorrect API key provided" in error.message  # the provider's own words survive
    assert API_KEY not in error.message and API_KEY not in str(error) and API_KEY[3:20] not in error.message
    assert len(server.chat_requests) == 1  # no retries


def test_a_stream_that_is_refused_raises_before_any_delta(server: LLMServer, completions: LiteLLMCompletions) -> None:
    server.reply_error(401, f"bad key {API_KEY}")
    events: list[StreamEvent] = []
    with pytest.raises(CompletionError) as info:
        for event in completions.stream(config(server), MESSAGES):
            events.append(event)
    assert events == []
    assert info.value.status == 401 and info.value.kind == "provider"
    assert API_KEY not in info.value.message


def test_hung_server_times_out(server: LLMServer, completions: LiteLLMCompletions) -> None:
    server.hang_next()
    started = time.monotonic()
    with pytest.raises(CompletionError) as info:
        completions.complete(config(server, timeout=1.5), MESSAGES)
    elapsed = time.monotonic() - started
    assert info.value.kind == "timeout" and info.value.status is None
    assert elapsed > 1.0 and elapsed < 3.0, elapsed  # the deadline held: no hang


def test_hung_stream_times_out(server: LLMServer, completions: LiteLLMCompletions) -> None:
    server.hang_next()
    started = time.monotonic()
    with pytest.raises(CompletionError) as info:
        collect(completions.stream(config(server, timeout=0.5), MESSAGES))
    assert info.value.kind == "timeout"
    assert time.monotonic() - started < 3.0


def test_a_stream_that_stalls_mid_way_times_out(server: LLMServer, completions: LiteLLMCompletions) -> None:
    server.reply_slow("too slow", 5.0)  # headers and the role chunk at once, then silence
    started = time.monotonic()
    with pytest.raises(CompletionError) as info:
        collect(completions.stream(config(server, timeout=0.5), MESSAGES))
    assert info.value.kind == "timeout"
    assert time.monotonic() - started < 2.0
    assert server.wait_for_disconnects(1, timeout=1.0)  # and the server is told


def test_a_server_that_dies_mid_stream_is_a_provider_error(completions: LiteLLMCompletions) -> None:
    doomed = LLMServer().start()
    try:
        doomed.reply_slow(" ".join(f"w{i}" for i in range(40)), 0.05)
        events = completions.stream(config(doomed), MESSAGES)
        assert next(events).text == "w0"
    finally:
        doomed.stop()  # drops the connection mid-body
    with pytest.raises(CompletionError) as info:
        collect(events)
    assert info.value.kind == "provider" and info.value.status is None
    assert API_KEY not in info.value.message


def test_unreachable_server_is_a_provider_error_without_status(completions: LiteLLMCompletions) -> None:
    cfg = LLMConfig(model="openai/test-model", api_base="http://127.0.0.1:9/v1", api_key=API_KEY, timeout=5)
    with pytest.raises(CompletionError) as info:
        completions.complete(cfg, MESSAGES)
    assert info.value.kind == "provider" and info.value.status is None
    assert "127.0.0.1:9" in info.value.message and API_KEY not in info.value.message


def test_unknown_model_string_is_a_config_error(server: LLMServer, completions: LiteLLMCompletions) -> None:
    with pytest.raises(CompletionError) as info:
        completions.complete(LLMConfig(model="no-such-provider-model", api_key=API_KEY), MESSAGES)
    assert info.value.kind == "config"
    assert server.chat_requests == []
    assert API_KEY not in repr(LLMConfig(model="openai/x", api_key=API_KEY))


# --- cancellation ---


def test_cancel_mid_stream_closes_the_connection(server: LLMServer, completions: LiteLLMCompletions) -> None:
    server.reply_slow(" ".join(f"word{i}" for i in range(40)), 0.05)  # ~2 s if read to the end
    cancel = threading.Event()
    seen: list[str] = []
    with pytest.raises(CompletionError) as info:
        for event in completions.stream(config(server), MESSAGES, cancel=cancel):
            seen.append(event.text)
            if len(seen) == 3:
                cancel.set()
                cancelled_at = time.monotonic()
    assert info.value.kind == "cancelled"
    assert seen == ["word0", " word1", " word2"]
    assert server.wait_for_disconnects(1, timeout=2.0), "the server never saw the client go away"
    assert time.monotonic() - cancelled_at < 0.5


@pytest.mark.parametrize("path", ["litellm-http-handler", "openai-sdk"])
def test_cancel_while_waiting_for_a_chunk_acts_at_once(server: LLMServer, completions: LiteLLMCompletions,
                                                       monkeypatch: pytest.MonkeyPatch, path: str) -> None:
    # Headers and the role chunk come at once, then 2 s of silence before the first word:
    # the consumer is blocked reading when the cancel comes, and the watchdog must wake it.
    # Both of litellm's paths for OpenAI-compatible chat reach the socket: its own HTTP handler
    # (the default) and the openai SDK (an operator's SDK_BYPASS=false).
    load_litellm()  # sets SDK_BYPASS's default, which the SDK case then overrides
    if path == "openai-sdk":
        monkeypatch.setenv(SDK_BYPASS, "false")
        server.reply_slow("warm", 0.0)  # the SDK's first call builds its client: not what is timed
        assert collect(completions.stream(config(server), MESSAGES))
    server.reply_slow("first second third", 2.0)
    cancel = threading.Event()
    timer = threading.Timer(0.3, cancel.set)
    started = time.monotonic()
    timer.start()
    with pytest.raises(CompletionError) as info:
        collect(completions.stream(config(server), MESSAGES, cancel=cancel))
    waited = time.monotonic() - started
    timer.join()
    assert info.value.kind == "cancelled"
    assert waited < 0.9, f"cancel waited for the next chunk ({waited:.2f} s)"
    assert server.wait_for_disconnects(1, timeout=1.0)


def test_abandoning_a_stream_closes_the_connection(server: LLMServer, completions: LiteLLMCompletions) -> None:
    server.reply_slow(" ".join(f"w{i}" for i in range(40)), 0.05)
    events = completions.stream(config(server), MESSAGES)
    assert next(events).text == "w0"
    events.close()  # what a consumer's `break` or garbage collection does
    assert server.wait_for_disconnects(1, timeout=2.0)


def test_the_connection_pool_still_works_after_cancellations(server: LLMServer, completions: LiteLLMCompletions) -> None:
    for _ in range(2):
        server.reply_slow("a b c d e f g h", 0.05)
        cancel = threading.Event()
        with pytest.raises(CompletionError):
            for _event in completions.stream(config(server), MESSAGES, cancel=cancel):
                cancel.set()
    server.reply("still fine")
    assert completions.complete(config(server), MESSAGES).text == "still fine"
    assert "".join(e.text for e in completions.stream(config(server), [{"role": "user", "content": "ok"}])) == "Echo: ok"

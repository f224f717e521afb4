"""Fitting a chat into the context window never raises, always fits, keeps the newest message."""

from __future__ import annotations

import random

import pytest

from application.context_window import MARKER, fit, reply_buffer, total_tokens
from infrastructure.tokenizer import Tokenizer

WORDS = ("ledger event user key workspace vector chunk answer question context window history token model "
         "reply stream thread session audit replay projection").split()


@pytest.fixture(scope="module")
def tokens() -> Tokenizer:
    return Tokenizer()


def text(rng: random.Random, n_words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n_words))


def test_what_fits_is_left_untouched(tokens):
    messages, cut = fit(tokens, 4096, "Be brief.", ["some context"], iter([("hi", "hello")]), "How are you?")
    assert not cut
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[0]["content"].startswith("Be brief.\nContext:\n[CONTEXT 0]:\nsome context")
    assert messages[-1]["content"] == "How are you?"


def test_a_prompt_longer_than_the_window_is_cut_in_the_middle_and_sent_alone(tokens):
    prompt = "BEGIN " + "word " * 20_000 + " END"
    messages, cut = fit(tokens, 4096, "system", ["ctx"], [("a", "b")] * 10, prompt)
    assert cut and len(messages) == 1 and messages[0]["role"] == "user"
    content = messages[0]["content"]
    assert content.startswith("BEGIN") and content.endswith("END") and MARKER in content
    assert total_tokens(tokens, messages) <= 4096 - reply_buffer(4096)


def test_oldest_history_goes_first(tokens):
    history = [(f"question {i} " + "x " * 50, f"answer {i} " + "y " * 50) for i in range(200)]
    messages, cut = fit(tokens, 4096, "system", [], reversed(history), "newest")
    assert cut
    kept = [m["content"] for m in messages if m["role"] == "user"][:-1]
    numbers = [int(c.split()[1]) for c in kept]
    assert numbers == sorted(numbers) and numbers[-1] == 199 and 0 not in numbers
    assert messages[-1]["content"] == "newest"


def test_image_parts_survive_and_count(tokens):
    prompt = [{"type": "text", "text": "look " * 10_000}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]
    messages, _ = fit(tokens, 2048, "s", [], [], prompt)
    parts = messages[-1]["content"]
    assert any(p["type"] == "image_url" for p in parts)
    assert total_tokens(tokens, messages) <= 2048 - reply_buffer(2048)


def test_random_chats_always_fit_and_keep_the_newest_message(tokens):
    """Property-style: random histories (0-2,000 exchanges), prompts up to 10x the window,
    windows from 1k to 128k. The result fits and ends with the newest user message, whose
    head and tail survive any cut."""
    rng = random.Random(20261123)
    windows = [1024, 2048, 4096, 8192, 16_384, 32_768, 131_072]
    for case in range(60):
        window = rng.choice(windows)
        n_history = rng.choice([0, 1, 3, 20, 200, 2000])
        history = [(text(rng, rng.randint(1, 60)), text(rng, rng.randint(1, 120))) for _ in range(n_history)]
        prompt_words = rng.randint(1, window * 10 // 1) if rng.random() < 0.5 else rng.randint(1, 50)
        prompt = "HEAD " + text(rng, min(prompt_words, window * 10)) + " TAIL"
        system = text(rng, rng.choice([5, 200, window]))
        context = [text(rng, rng.randint(10, 400)) for _ in range(rng.randint(0, 6))]
        messages, _ = fit(tokens, window, system, context, reversed(history), prompt)
        assert total_tokens(tokens, messages) <= window - reply_buffer(window), (case, window)
        last = messages[-1]
        assert last["role"] == "user", case
        assert last["content"].startswith("HEAD") and last["content"].endswith("TAIL"), case
        assert all(m["role"] in ("system", "user", "assistant") for m in messages)


def test_a_long_history_is_read_only_as_far_back_as_the_window_needs(tokens):
    """The history is taken newest first, lazily: with 10,000 exchanges and a 4k window the fit
    stops after the few that can be in the prompt (the chat reads its history page by page)."""
    taken = []

    def newest_first():
        for i in range(10_000, 0, -1):
            taken.append(i)
            yield (f"question {i} " + "x " * 50, f"answer {i} " + "y " * 50)

    messages, cut = fit(tokens, 4096, "system", [], newest_first(), "newest")
    kept = [int(m["content"].split()[1]) for m in messages[:-1] if m["role"] == "user"]
    assert cut and kept == sorted(kept) and kept[-1] == 10_000
    assert len(taken) < 50, len(taken)


def test_a_short_history_that_fits_is_sent_whole_oldest_first(tokens):
    history = [(f"q{i}", f"a{i}") for i in range(5)]
    messages, cut = fit(tokens, 4096, "s", [], reversed(history), "now")
    assert not cut
    assert [m["content"] for m in messages[1:-1]] == [t for pair in history for t in pair]

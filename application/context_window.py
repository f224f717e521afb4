"""Fit a chat into the model's context window: never raise, always keep the newest message.

Upstream's budget split (reference §5): with window W, the system prompt (with its RAG
context) gets 15 %, history 15 %, the user prompt 70 %, and a reply buffer stays free. When
everything fits, nothing changes. Otherwise: a prompt over its 70 % is cut in the middle and
sent alone; an over-long system prompt is cut (instructions to a quarter of its budget,
context to three quarters); history is rebuilt from the newest exchange back while it fits,
the three newest exchanges being cut rather than dropped. Unlike upstream, which can still
overflow (buffer arithmetic, message overhead) or crash on odd inputs, a final pass drops the
oldest history, then shrinks context and prompt, until the messages provably fit
`W - reply buffer` as counted by the same tokenizer."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Protocol

from application.ports import Message, Part

MARKER = "\n\n--prompt truncated for brevity--\n\n"
MESSAGE_OVERHEAD = 4  # tokens per message in OpenAI's chat format, plus 3 to prime the reply
IMAGE_TOKENS = 85  # a low-detail image part
MIN_WINDOW = 256


class Tokens(Protocol):
    def count(self, text: str) -> int: ...

    def truncate_middle(self, text: str, max_tokens: int, marker: str = ...) -> str: ...


def reply_buffer(window: int) -> int:
    """Tokens kept free for the reply: upstream's 600, less for small windows."""
    return min(600, max(64, window // 4))


def message_tokens(tokens: Tokens, message: Message) -> int:
    content = message["content"]
    if isinstance(content, str):
        return tokens.count(content) + MESSAGE_OVERHEAD
    total = MESSAGE_OVERHEAD
    for part in content:
        total += tokens.count(part.get("text", "")) if part.get("type") == "text" else IMAGE_TOKENS
    return total


def total_tokens(tokens: Tokens, messages: Sequence[Message]) -> int:
    return sum(message_tokens(tokens, m) for m in messages) + 3


def system_message(prompt: str, context: Sequence[str]) -> str:
    if not context:
        return prompt
    blocks = "".join(f"[CONTEXT {i}]:\n{text}\n[END CONTEXT {i}]\n\n" for i, text in enumerate(context))
    return f"{prompt}\nContext:\n{blocks}"


def _with_text(content: str | list[Part], text: str) -> str | list[Part]:
    if isinstance(content, str):
        return text
    return [{"type": "text", "text": text}] + [p for p in content if p.get("type") != "text"]


def _text_of(content: str | list[Part]) -> str:
    if isinstance(content, str):
        return content
    return "\n".join(p.get("text", "") for p in content if p.get("type") == "text")


def fit(
    tokens: Tokens,
    window: int,
    system: str,
    context: Sequence[str],
    newest_first: Iterable[tuple[str, str]],
    prompt: str | list[Part],
) -> tuple[list[Message], bool]:
    """Messages `[system, ...history pairs, user]` that fit `window - reply_buffer(window)`.

    `newest_first` is the history as (user text, assistant text), newest exchange first; it is
    read only as far back as the fit needs. Returns the messages and whether anything was cut
    or dropped."""
    history = _Replay(newest_first)
    window = max(MIN_WINDOW, int(window))
    budget = window - reply_buffer(window)
    user = {"role": "user", "content": prompt}
    system_msg = {"role": "system", "content": system_message(system, context)}
    if _fits_whole(tokens, budget, system_msg, history, user):
        full = [system_msg]
        for asked, answered in reversed(history.taken):
            full += [{"role": "user", "content": asked}, {"role": "assistant", "content": answered}]
        return full + [user], False

    limits = {"system": int(0.15 * window), "history": int(0.15 * window), "user": int(0.7 * window)}
    prompt_text = _text_of(prompt)
    if tokens.count(prompt_text) > limits["user"]:
        # The prompt alone takes everything: it is sent alone, cut to fit.
        cut = tokens.truncate_middle(prompt_text, int(0.8 * window), MARKER)
        return _squeeze(tokens, budget, [], [], {"role": "user", "content": _with_text(prompt, cut)}), True

    system_text = system_msg["content"]
    if tokens.count(system_text) > limits["system"]:
        system_text = _cut_system(tokens, system, context, limits["system"])
    kept = _history(tokens, history, limits["history"])
    system_msg = {"role": "system", "content": system_text}
    return _squeeze(tokens, budget, [system_msg], kept, user), True


class _Replay:
    """A newest-first history read once from its source and replayed from what was taken."""

    def __init__(self, source: Iterable[tuple[str, str]]) -> None:
        self._source = iter(source)
        self.taken: list[tuple[str, str]] = []

    def __iter__(self) -> Iterator[tuple[str, str]]:
        index = 0
        while True:
            if index == len(self.taken):
                item = next(self._source, None)
                if item is None:
                    return
                self.taken.append(item)
            yield self.taken[index]
            index += 1


def _fits_whole(tokens: Tokens, budget: int, system: Message, history: Iterable[tuple[str, str]],
                user: Message) -> bool:
    """Whether everything fits, counting the newest exchanges first and stopping as soon as
    the budget is passed (a long history is not read or counted to the end on every chat)."""
    running = 3 + message_tokens(tokens, system) + message_tokens(tokens, user)
    for asked, answered in history:
        if running > budget:
            return False
        running += tokens.count(asked) + tokens.count(answered) + 2 * MESSAGE_OVERHEAD
    return running <= budget


def _cut_system(tokens: Tokens, instructions: str, context: Sequence[str], limit: int) -> str:
    head = tokens.truncate_middle(instructions, max(1, limit // 4), MARKER)
    if not context:
        return tokens.truncate_middle(instructions, limit, MARKER)
    body = system_message("", context).removeprefix("\nContext:\n")
    return f"{head}\nContext: {tokens.truncate_middle(body, max(1, limit * 3 // 4), MARKER)}"


def _history(tokens: Tokens, history: Iterable[tuple[str, str]], limit: int) -> list[Message]:
    """Newest exchanges first while they fit; the three newest are cut rather than dropped."""
    side_cap = max(1, int(limit / 2.2))
    kept: list[Message] = []
    running = 0
    for index, (asked, answered) in enumerate(history):
        pair = [{"role": "user", "content": asked}, {"role": "assistant", "content": answered}]
        size = sum(message_tokens(tokens, m) for m in pair)
        if running + size < limit:
            kept[:0] = pair
            running += size
            continue
        if index > 2:
            break
        pair = [{"role": m["role"], "content": tokens.truncate_middle(m["content"], side_cap, MARKER)} for m in pair]
        size = sum(message_tokens(tokens, m) for m in pair)
        if running + size < limit:
            kept[:0] = pair
            running += size
    return kept


def _squeeze(tokens: Tokens, budget: int, system: list[Message], history: list[Message],
             user: Message) -> list[Message]:
    """The final guarantee: drop oldest history, then halve the system message, then the
    prompt's text, until the whole fits the budget. Every step shrinks, so it ends."""
    history = list(history)
    while True:
        messages = system + history + [user]
        excess = total_tokens(tokens, messages) - budget
        if excess <= 0:
            return messages
        if history:
            del history[:2]  # the oldest exchange
            continue
        if system and system[0]["content"]:
            text = system[0]["content"]
            target = max(0, tokens.count(text) - excess) if tokens.count(text) > excess else 0
            system = [{"role": "system", "content": tokens.truncate_middle(text, target, MARKER)}] if target else []
            continue
        text = _text_of(user["content"])
        target = max(0, tokens.count(text) - excess)
        user = {"role": "user", "content": _with_text(user["content"], tokens.truncate_middle(text, target, MARKER))}
        if target == 0:
            return [user]  # nothing of the text fits with the parts: send the bare parts

"""Token usage of a completion: the provider's figures, or an estimate when it sent none."""

from __future__ import annotations

from typing import Any

from infrastructure.llm_types import Usage

# --- usage -------------------------------------------------------------------------------


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

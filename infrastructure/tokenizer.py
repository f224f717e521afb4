"""Token counting, chunking and truncation with tiktoken's cl100k_base, fully offline.

tiktoken downloads its encodings from the web on first use; litellm ships the files in its
package, so we point ``TIKTOKEN_CACHE_DIR`` there (without importing litellm, which is slow).
tiktoken is imported lazily: importing this module costs nothing.

Chunking encodes the text once and works on token offsets. Every cut is made where a token
starts a whole UTF-8 character (cl100k can split one character over several tokens), so
decoding a chunk never produces U+FFFD, and the same input always gives the same chunks.
"""

from __future__ import annotations

import importlib.util
import math
import os
import functools
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import tiktoken

ENCODING_NAME = "cl100k_base"
DEFAULT_MARKER = "\n…[truncated]…\n"

# A cut prefers a natural boundary in the last part of its window: with size 100, tokens
# 80..100 are searched for a paragraph break, then a sentence end, then a word boundary.
_BOUNDARY_TAIL = 0.2

_RANK_NONE, _RANK_WORD, _RANK_SENTENCE, _RANK_PARAGRAPH = 0, 1, 2, 3
_WS = frozenset(b" \t\n\r\x0b\x0c")
_SENTENCE_END = frozenset(b".!?")
_CLOSERS = frozenset(b"\"')]}")
_CJK_SENTENCE_END = ("。".encode(), "！".encode(), "？".encode())
_RUN_SCAN = 32  # bytes of whitespace looked at on each side of a cut

_lock = threading.Lock()
_encoding: tiktoken.Encoding | None = None
_MEMO_MAX_CHARS = 8_000  # with 8,192 entries: at most ~64 MB of remembered text


@functools.lru_cache(maxsize=8_192)
def _memo_count(encoding: Any, text: str) -> int:
    return len(encoding.encode_ordinary(text))


def _tiktoken_cache_dir() -> str | None:
    """The directory inside the installed litellm package that holds tiktoken's files."""
    spec = importlib.util.find_spec("litellm")  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "litellm_core_utils" / "tokenizers"
    return str(path) if path.is_dir() else None


def configure_offline() -> None:
    """Point tiktoken at litellm's bundled encodings (unless the environment already says)."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    if "TIKTOKEN_CACHE_DIR" not in os.environ:
        cache = _tiktoken_cache_dir()
        if cache is not None:
            os.environ["TIKTOKEN_CACHE_DIR"] = cache


def get_encoding() -> tiktoken.Encoding:
    """The process-wide cl100k_base encoding, loaded once on first use."""
    global _encoding
    if _encoding is None:
        with _lock:
            if _encoding is None:
                configure_offline()
                import tiktoken

                _encoding = tiktoken.get_encoding(ENCODING_NAME)
    return _encoding


class Tokenizer:
    """cl100k_base token counts, token-aware chunks and middle truncation.

    Special-token text such as ``<|endoftext|>`` in documents is treated as ordinary text.
    Thread-safe: the shared encoding is immutable and tiktoken releases the GIL.
    """

    encoding_name = ENCODING_NAME

    @property
    def _enc(self) -> tiktoken.Encoding:
        """The shared encoding, loaded on first use (not at start-up: most CLI commands never count)."""
        return get_encoding()

    # --- counting ---

    def encode(self, text: str) -> list[int]:
        return self._enc.encode_ordinary(text)

    def count(self, text: str) -> int:
        if not text:
            return 0
        if len(text) <= _MEMO_MAX_CHARS:  # history texts come back every chat: count them once
            return _memo_count(self._enc, text)
        return len(self._enc.encode_ordinary(text))

    # --- chunking ---

    def chunk(self, text: str, size: int, overlap: int) -> list[str]:
        """Split ``text`` into chunks of at most ``size`` tokens, ``overlap`` tokens shared.

        A cut falls on a paragraph break, else a sentence end, else a word boundary when one
        lies in the last ~20 % of the window; otherwise at the window's end (on a character
        boundary). The next chunk starts ``overlap`` tokens before the cut, moved forward to
        the next word start when one is near. Chunks are stripped of surrounding whitespace;
        empty or whitespace-only pieces are dropped. Deterministic.

        Every chunk re-encoded on its own has at most ``size`` tokens, except when ``size`` is
        smaller than the tokens of one character (an emoji can take 3): that chunk then holds
        the whole character rather than a broken piece of it.
        """
        _check_int("size", size)
        _check_int("overlap", overlap)
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        if not 0 <= overlap < size:
            raise ValueError(f"overlap must be >= 0 and < size ({size}), got {overlap}")
        if not text or text.isspace():
            return []

        tokens = self._enc.encode_ordinary(text)
        n = len(tokens)
        data, offsets, starts_char = self._layout(text, tokens)
        tail = max(1, math.ceil(size * _BOUNDARY_TAIL))
        encode = self._enc.encode_ordinary
        chunks: list[str] = []
        start = 0
        while True:
            window_end = min(start + size, n)
            while True:
                if window_end >= n:
                    end = n
                else:
                    end = _choose_cut(data, offsets, starts_char, start, window_end, tail)
                piece = data[offsets[start] : offsets[end]].decode("utf-8").strip()
                if not piece:
                    break
                # A chunk re-encoded on its own can take a token more at its edges than
                # its share of the whole text did: shrink the window until it fits.
                excess = len(encode(piece)) - size
                if excess <= 0 or window_end - start <= 1:
                    break
                window_end = max(start + 1, window_end - excess)
            if piece:
                chunks.append(piece)
            if end >= n:
                break
            start = _next_start(data, offsets, starts_char, start, end, overlap)
        return chunks

    # --- truncation ---

    def truncate_middle(self, text: str, max_tokens: int, marker: str = DEFAULT_MARKER) -> str:
        """``text`` if it fits in ``max_tokens``, else its head + ``marker`` + its tail.

        The result always fits (counted by re-encoding it). Head and tail get about half of
        what is left after the marker each. If not even the marker fits, the head alone is
        returned. Never raises for any ``max_tokens >= 0``.
        """
        _check_int("max_tokens", max_tokens)
        if max_tokens < 0:
            raise ValueError(f"max_tokens must be >= 0, got {max_tokens}")
        if max_tokens == 0 or not text:
            return ""
        tokens = self._enc.encode_ordinary(text)
        n = len(tokens)
        if n <= max_tokens:
            return text
        data, offsets, starts_char = self._layout(text, tokens)
        marker_tokens = self.count(marker)
        budget = max_tokens - marker_tokens
        if budget < 2:  # no room for head, marker and tail: keep the head only
            return self._fit_head(data, offsets, starts_char, n, max_tokens)
        while budget >= 2:
            head_n = budget - budget // 2
            tail_n = budget // 2
            # Cut at the nearest word boundary when one is close, else on a character.
            slack = max(1, min(8, budget // 10))
            head_end = _word_floor(data, offsets, starts_char, head_n, slack)
            tail_start = _word_ceil(data, offsets, starts_char, n - tail_n, n, slack)
            head = data[: offsets[head_end]].decode("utf-8")
            tail_text = data[offsets[tail_start] :].decode("utf-8")
            result = head + marker + tail_text
            excess = self.count(result) - max_tokens
            if excess <= 0:
                return result
            budget -= excess  # the seams re-tokenized differently; shrink and retry
        return self._fit_head(data, offsets, starts_char, n, max_tokens)

    # --- helpers ---

    def _fit_head(self, data: bytes, offsets: list[int], starts_char: list[bool], n: int, limit: int) -> str:
        cut = min(limit, n)
        while cut > 0:
            head = data[: offsets[_char_floor(starts_char, cut)]].decode("utf-8")
            if self.count(head) <= limit:
                return head
            cut -= 1
        return ""

    def _layout(self, text: str, tokens: list[int]) -> tuple[bytes, list[int], list[bool]]:
        """The text's UTF-8 bytes, each token's byte offset (n + 1 of them), and whether each
        position (0..n) starts a whole character, so that a cut there decodes cleanly."""
        import numpy as np

        n = len(tokens)
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(_token_lengths()[np.asarray(tokens, dtype=np.int64)], out=offsets[1:])
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates: tiktoken replaced them; so do we
            data = b""
        if len(data) != offsets[n]:
            data = b"".join(self._enc.decode_tokens_bytes(tokens))
        raw = np.frombuffer(data, dtype=np.uint8)
        starts = np.ones(n + 1, dtype=bool)
        starts[:n] = (raw[offsets[:n]] & 0xC0) != 0x80  # not a UTF-8 continuation byte
        return data, offsets.tolist(), starts.tolist()


_lengths_table = None


def _token_lengths():
    """Byte length of every token id of the shared encoding (a numpy array, built once)."""
    global _lengths_table
    if _lengths_table is None:
        import numpy as np

        enc = get_encoding()
        table = np.zeros(enc.n_vocab, dtype=np.int64)
        for token in range(enc.n_vocab):
            try:
                table[token] = len(enc.decode_single_token_bytes(token))
            except KeyError:  # ids with no token in between the ranks
                pass
        _lengths_table = table
    return _lengths_table


def _check_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")


def _char_floor(starts_char: list[bool], pos: int) -> int:
    while pos > 0 and not starts_char[pos]:
        pos -= 1
    return pos


def _char_ceil(starts_char: list[bool], pos: int, n: int) -> int:
    while pos < n and not starts_char[pos]:
        pos += 1
    return pos


def _word_floor(data: bytes, offsets: list[int], starts_char: list[bool], pos: int, slack: int) -> int:
    """The last word boundary in (pos - slack, pos], else the last character boundary
    (or, if only part of one character lies before ``pos``, the end of that character)."""
    for j in range(pos, max(0, pos - slack), -1):
        if starts_char[j] and _rank(data, offsets[j]) > _RANK_NONE:
            return j
    cut = _char_floor(starts_char, pos)
    return cut if cut > 0 else _char_ceil(starts_char, pos, len(starts_char) - 1)


def _word_ceil(data: bytes, offsets: list[int], starts_char: list[bool], pos: int, n: int, slack: int) -> int:
    """The first word boundary in [pos, pos + slack), else the first character boundary."""
    for j in range(pos, min(n, pos + slack)):
        if starts_char[j] and _rank(data, offsets[j]) > _RANK_NONE:
            return j
    return _char_ceil(starts_char, pos, n)


def _rank(data: bytes, p: int) -> int:
    """How good a cut at byte ``p`` is: paragraph > sentence > word > none."""
    size = len(data)
    before = data[p - 1] if p > 0 else 0x0A
    after = data[p] if p < size else 0x0A
    if before not in _WS and after not in _WS:
        if p >= 3 and data[p - 3 : p] in _CJK_SENTENCE_END:
            return _RANK_SENTENCE
        return _RANK_NONE
    lo = p
    floor = max(0, p - _RUN_SCAN)
    while lo > floor and data[lo - 1] in _WS:
        lo -= 1
    hi = p
    ceil = min(size, p + _RUN_SCAN)
    while hi < ceil and data[hi] in _WS:
        hi += 1
    newlines = data.count(b"\n", lo, hi)
    if newlines >= 2:
        return _RANK_PARAGRAPH
    if newlines == 1:
        return _RANK_SENTENCE  # a line break: list items, headings, code lines
    if lo > 0:
        last = data[lo - 1]
        if last in _SENTENCE_END:
            return _RANK_SENTENCE
        if last in _CLOSERS and lo > 1 and data[lo - 2] in _SENTENCE_END:
            return _RANK_SENTENCE
        if lo >= 3 and data[lo - 3 : lo] in _CJK_SENTENCE_END:
            return _RANK_SENTENCE
    return _RANK_WORD


def _choose_cut(
    data: bytes, offsets: list[int], starts_char: list[bool], start: int, end: int, tail: int
) -> int:
    """The token index to end this chunk at: the best boundary in (end - tail, end], latest
    first among equals; else ``end`` moved back onto a character boundary."""
    best, best_rank = -1, _RANK_NONE
    lowest = max(start + 1, end - tail + 1)
    for j in range(end, lowest - 1, -1):
        if not starts_char[j]:
            continue
        r = _rank(data, offsets[j])
        if r > best_rank:
            best, best_rank = j, r
            if r == _RANK_PARAGRAPH:
                break
    if best_rank > _RANK_NONE:
        return best
    cut = _char_floor(starts_char, end)
    if cut > start:
        return cut
    # The window holds only part of one character (size smaller than its tokens).
    return _char_ceil(starts_char, end, len(starts_char) - 1)


def _next_start(
    data: bytes, offsets: list[int], starts_char: list[bool], start: int, end: int, overlap: int
) -> int:
    """Where the next chunk begins: ``overlap`` tokens before ``end``, moved forward to the
    next word start within half the overlap, or at least onto a character boundary."""
    if overlap == 0:
        return end
    first = max(start + 1, end - overlap)
    limit = min(end - 1, first + max(1, overlap // 2))
    fallback = -1
    for j in range(first, limit + 1):
        if not starts_char[j]:
            continue
        if fallback < 0:
            fallback = j
        if _rank(data, offsets[j]) > _RANK_NONE:
            return j
    if fallback >= 0:
        return fallback
    return end

"""How much one parse may unpack, extract and read, and the errors that say a file went over.

The limits are counted while a file is read (bytes as they come out of the decompressor, text
as it is produced), never taken from sizes the file declares. Every refusal names the limit and
the setting that raises it, because the operator, not the uploader, can change it.
"""

from __future__ import annotations

import msgspec

MIB = 1 << 20


class UnparsableFile(ValueError):
    """The file claims a supported format but is corrupt, binary, or has no text."""


class ParseLimitExceeded(UnparsableFile):
    """The file is over one of the parse limits (unpacked bytes, text, pages, memory, time)."""


class ParseLimits(msgspec.Struct, frozen=True, kw_only=True):
    max_unpacked_bytes: int = 32 * MIB  # PARSE_MAX_UNPACKED_BYTES: bytes out of decompressors
    max_text_chars: int = 64 * MIB  # PARSE_MAX_TEXT_CHARS: characters of extracted text
    max_pages: int = 2000  # PARSE_MAX_PAGES: pages of a PDF


def refusal(filename: str, what: str, setting: str, value: object, unit: str = "") -> ParseLimitExceeded:
    """`'a.docx' unpacks to more than 32 MiB; the limit is PARSE_MAX_UNPACKED_BYTES=... (...)`."""
    return ParseLimitExceeded(
        f"{filename!r} {what}; the limit is {setting}={value}{unit}. "
        f"An administrator can raise {setting} to accept such files."
    )


def _size(n: int) -> str:
    return f"{n / MIB:.0f} MiB" if n >= MIB else f"{n} bytes"


class Budget:
    """What one parse has used so far; each `add_*` raises as soon as a limit is passed."""

    def __init__(self, filename: str, limits: ParseLimits) -> None:
        self.filename = filename
        self.limits = limits
        self.unpacked = 0
        self.text = 0

    def add_unpacked(self, n: int) -> None:
        self.unpacked += n
        if self.unpacked > self.limits.max_unpacked_bytes:
            raise self.unpacked_refusal()

    def unpacked_refusal(self) -> ParseLimitExceeded:
        return refusal(self.filename, f"unpacks to more than {_size(self.limits.max_unpacked_bytes)}",
                       "PARSE_MAX_UNPACKED_BYTES", self.limits.max_unpacked_bytes, " bytes")

    def add_text(self, n: int) -> None:
        self.text += n
        self.check_text(self.text)

    def check_text(self, chars: int) -> None:
        if chars > self.limits.max_text_chars:
            raise refusal(self.filename, f"has more than {self.limits.max_text_chars} characters of text",
                          "PARSE_MAX_TEXT_CHARS", self.limits.max_text_chars, " characters")

    def check_pages(self, pages: int) -> None:
        if pages > self.limits.max_pages:
            raise self.pages_refusal(str(pages))

    def pages_refusal(self, pages: str) -> ParseLimitExceeded:
        return refusal(self.filename, f"has {pages} pages", "PARSE_MAX_PAGES", self.limits.max_pages, " pages")


def clean_field(value: object) -> str:
    """A metadata value (title, author, ...) as one line of text, NULs dropped."""
    return " ".join(str(value).replace("\x00", "").split()) if value is not None else ""

"""Uploaded bytes to text: the document collector.

``parse(filename, data, content_type, limits=...)`` picks a format by extension first, then by
content type, and returns a ``ParsedDocument``. Hostile input is expected: what a parse unpacks
and extracts is counted against ``ParseLimits`` as it is read (see parse_limits.py, docx_text.py,
pdf_text.py), HTML goes through lxml (see html_text.py), and every parser error becomes
``UnparsableFile`` (``ParseLimitExceeded`` when a limit was passed). The server calls ``parse``
in sandboxed worker processes (parse_pool.py), never in its own process.

CSV is rendered one line per data row as ``header: value, header: value`` (empty cells left
out): retrieval cuts documents into chunks, and a chunk of bare rows would lose the header row
that says what each value means.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
from pathlib import PurePath

import msgspec

from infrastructure.html_text import html_to_text, meta_charset
from infrastructure.parse_limits import Budget, ParseLimitExceeded, ParseLimits, UnparsableFile

__all__ = ["DOCX_MIME", "ParseLimitExceeded", "ParseLimits", "ParsedDocument", "UnparsableFile",
           "UnsafeName", "UnsupportedFileType", "accepted_file_types", "parse", "safe_filename"]

DOCX_MIME = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"

# kind -> (mime reported in ParsedDocument.mime, extensions)
_FORMATS: dict[str, tuple[str, tuple[str, ...]]] = {
    "text": ("text/plain", (".txt",)),
    "markdown": ("text/markdown", (".md", ".markdown", ".mdx")),
    "html": ("text/html", (".html", ".htm")),
    "csv": ("text/csv", (".csv",)),
    "json": ("application/json", (".json",)),
    "pdf": ("application/pdf", (".pdf",)),
    "docx": (DOCX_MIME, (".docx",)),
}
_BY_EXTENSION = {ext: kind for kind, (_, exts) in _FORMATS.items() for ext in exts}
_BY_CONTENT_TYPE = {
    "text/plain": "text",
    "text/markdown": "markdown",
    "text/x-markdown": "markdown",
    "text/html": "html",
    "application/xhtml+xml": "html",
    "text/csv": "csv",
    "application/csv": "csv",
    "application/json": "json",
    "text/json": "json",
    "application/pdf": "pdf",
    DOCX_MIME: "docx",
}


class ParsedDocument(msgspec.Struct, frozen=True):
    text: str
    title: str
    mime: str
    metadata: dict[str, str] = msgspec.field(default_factory=dict)


class UnsupportedFileType(ValueError):
    """Neither the extension nor the content type is a format we read."""


class UnsafeName(ValueError):
    """A file name that could name a path outside its folder, or is otherwise unusable."""


def accepted_file_types() -> dict[str, list[str]]:
    """MIME type -> extensions, in AnythingLLM's shape (Markdown sits under text/plain there)."""
    types: dict[str, list[str]] = {}
    for kind, (mime, exts) in _FORMATS.items():
        types.setdefault("text/plain" if kind == "markdown" else mime, []).extend(exts)
    return types


def _accepted_list() -> str:
    return ", ".join(sorted(_BY_EXTENSION))


def safe_filename(name: str) -> str:
    """The name stripped of surrounding whitespace, if it is a plain file name; else UnsafeName."""
    stripped = name.strip() if isinstance(name, str) else ""
    if not stripped:
        raise UnsafeName("file name is empty")
    if any(sep in stripped for sep in ("/", "\\")):
        raise UnsafeName("file name must not contain a path separator ('/' or '\\')")
    # NUL and the other control characters: NUL truncates paths in C APIs, CR/LF break headers.
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in stripped):
        raise UnsafeName("file name must not contain control characters (such as NUL)")
    if stripped in (".", ".."):
        raise UnsafeName("file name must not be '.' or '..'")
    if re.match(r"[A-Za-z]:", stripped):  # "C:name" is drive-relative on Windows
        raise UnsafeName("file name must not start with a drive letter")
    if len(stripped.encode("utf-8", "surrogatepass")) > 255:
        raise UnsafeName("file name is longer than 255 bytes")
    return stripped


def parse(filename: str, data: bytes, content_type: str | None = None, *,
          limits: ParseLimits | None = None) -> ParsedDocument:
    """The text, title and metadata of an uploaded file; `UnsupportedFileType`, or
    `UnparsableFile` (`ParseLimitExceeded` past one of `limits`)."""
    mime_param, charset = _split_content_type(content_type)
    kind = _BY_EXTENSION.get(PurePath(filename).suffix.lower())
    if kind is None:
        kind = _BY_CONTENT_TYPE.get(mime_param) or ("json" if mime_param.endswith("+json") else None)
    if kind is None:
        raise UnsupportedFileType(
            f"unsupported file type for {filename!r}; accepted extensions: {_accepted_list()}"
        )
    budget = Budget(filename, limits or ParseLimits())
    text, metadata = _extract(kind, filename, data, charset, budget)
    budget.check_text(len(text))
    if not text.strip():
        raise UnparsableFile(f"{filename!r} has no text that could be extracted")
    title = metadata.get("title") or filename
    return ParsedDocument(text=text, title=title, mime=_FORMATS[kind][0], metadata=metadata)


def _extract(kind: str, filename: str, data: bytes, charset: str | None, budget: Budget) -> tuple[str, dict[str, str]]:
    if kind == "pdf":
        from infrastructure.pdf_text import pdf_to_text

        return pdf_to_text(filename, data, budget)
    if kind == "docx":
        from infrastructure.docx_text import docx_to_text

        return docx_to_text(filename, data, budget)
    if kind == "html" and not charset:
        charset = meta_charset(data)
    decoded = _decode(filename, data, charset)
    if kind == "html":
        return html_to_text(decoded)
    if kind == "csv":
        return _parse_csv(decoded, budget), {}
    if kind == "json":
        return _parse_json(filename, decoded, budget), {}
    return decoded, {}  # plain text and Markdown are kept as they are


# --- text formats ---


def _split_content_type(content_type: str | None) -> tuple[str, str | None]:
    if not content_type:
        return "", None
    mime, *params = content_type.split(";")
    charset = None
    for param in params:
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset":
            charset = value.strip().strip("\"'") or None
    return mime.strip().lower(), charset


_JUNK = re.compile(r"[\x01-\x08\x0e-\x1f\x7f\ufffd]")


def _decode(filename: str, data: bytes, charset: str | None) -> str:
    """BOM first, then a declared charset, then UTF-8, then UTF-8 with replacement characters."""
    if data.startswith(codecs.BOM_UTF8):
        text = data[3:].decode("utf-8", "replace")
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        text = data.decode("utf-16", "replace")  # the codec reads and drops the BOM
    else:
        text = None
        if charset:
            try:
                text = data.decode(charset)
            except (LookupError, UnicodeDecodeError):
                pass  # unknown or wrong declared charset
        if text is None:
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                text = data.decode("utf-8", "replace")
    # Binary data decoded as text: NULs, or a high share of control/replacement characters.
    sample = text[:65536]
    if "\x00" in text or len(_JUNK.findall(sample)) > len(sample) * 0.3:
        raise UnparsableFile(f"{filename!r} looks like binary data, not text")
    return text


def _parse_csv(text: str, budget: Budget) -> str:
    try:
        try:
            dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t|")
        except csv.Error:
            dialect = csv.excel
        rows = [[" ".join(cell.split()) for cell in row] for row in csv.reader(io.StringIO(text), dialect)]
    except csv.Error:  # e.g. a field over csv.field_size_limit(): keep the raw text
        return text
    rows = [row for row in rows if any(row)]
    if not rows:
        return ""
    header = rows[0]
    if len(rows) == 1:
        return ", ".join(header)

    def name(i: int) -> str:
        return header[i] if i < len(header) and header[i] else f"column {i + 1}"

    lines = []
    for row in rows[1:]:  # a long header repeated on every row can outgrow the file many times
        lines.append(", ".join(f"{name(i)}: {v}" for i, v in enumerate(row) if v))
        budget.add_text(len(lines[-1]) + 1)
    return "\n".join(lines)


def _parse_json(filename: str, text: str, budget: Budget) -> str:
    """Pretty-printed with indent 2; deep nesting multiplies the indentation, so the output is
    counted as it is written."""
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as e:  # JSONDecodeError is a ValueError
        raise UnparsableFile(f"{filename!r} is not valid JSON: {e}") from None
    if value in (None, "", [], {}):
        return ""
    chunks = []
    try:
        for chunk in json.JSONEncoder(indent=2, ensure_ascii=False).iterencode(value):
            budget.add_text(len(chunk))
            chunks.append(chunk)
    except RecursionError as e:
        raise UnparsableFile(f"{filename!r} is not valid JSON: {e}") from None
    return "".join(chunks)

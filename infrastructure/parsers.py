"""Uploaded bytes to text: the document collector, in process.

``parse(filename, data, content_type)`` picks a format by extension first, then by content type,
and returns a ``ParsedDocument``. Hostile input is expected: PDF parsing is capped in pages and
time, DOCX archives are checked for zip bombs before python-docx unpacks them, HTML goes through
lxml (see html_text.py), and every parser error becomes ``UnparsableFile``.

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
import time
import zipfile
from pathlib import PurePath
from typing import Any

import msgspec

from infrastructure.html_text import html_to_text, meta_charset

DOCX_MIME = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
MAX_PDF_PAGES = 2000
PDF_TIME_BUDGET = 60.0  # seconds; later pages are dropped (and metadata says so)
MAX_DOCX_UNPACKED = 256 << 20  # declared uncompressed size of all archive entries
MAX_DOCX_ENTRIES = 10_000

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


class UnparsableFile(ValueError):
    """The file claims a supported format but is corrupt, binary, or has no text."""


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


def parse(filename: str, data: bytes, content_type: str | None = None) -> ParsedDocument:
    mime_param, charset = _split_content_type(content_type)
    kind = _BY_EXTENSION.get(PurePath(filename).suffix.lower())
    if kind is None:
        kind = _BY_CONTENT_TYPE.get(mime_param) or ("json" if mime_param.endswith("+json") else None)
    if kind is None:
        raise UnsupportedFileType(
            f"unsupported file type for {filename!r}; accepted extensions: {_accepted_list()}"
        )
    mime = _FORMATS[kind][0]
    if kind == "pdf":
        text, metadata = _parse_pdf(filename, data)
    elif kind == "docx":
        text, metadata = _parse_docx(filename, data)
    else:
        if kind == "html" and not charset:
            charset = meta_charset(data)
        decoded = _decode(filename, data, charset)
        if kind == "html":
            text, metadata = html_to_text(decoded)
        elif kind == "csv":
            text, metadata = _parse_csv(decoded), {}
        elif kind == "json":
            text, metadata = _parse_json(filename, decoded), {}
        else:  # plain text and Markdown are kept as they are
            text, metadata = decoded, {}
    if not text.strip():
        raise UnparsableFile(f"{filename!r} has no text that could be extracted")
    title = metadata.get("title") or filename
    return ParsedDocument(text=text, title=title, mime=mime, metadata=metadata)


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


def _parse_csv(text: str) -> str:
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

    return "\n".join(", ".join(f"{name(i)}: {v}" for i, v in enumerate(row) if v) for row in rows[1:])


def _parse_json(filename: str, text: str) -> str:
    try:
        value = json.loads(text)
        if value in (None, "", [], {}):
            return ""
        return json.dumps(value, indent=2, ensure_ascii=False)
    except (ValueError, RecursionError) as e:  # JSONDecodeError is a ValueError
        raise UnparsableFile(f"{filename!r} is not valid JSON: {e}") from None


# --- binary formats ---


def _clean(value: object) -> str:
    return " ".join(str(value).replace("\x00", "").split()) if value is not None else ""


def _parse_pdf(filename: str, data: bytes) -> tuple[str, dict[str, str]]:
    import pypdf

    metadata: dict[str, str] = {}
    pages: list[str] = []
    try:
        reader = pypdf.PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted and not _pdf_decrypt(reader):
            raise UnparsableFile(f"{filename!r} is an encrypted PDF; upload it without a password")
        metadata.update(_pdf_info(reader))
        count = len(reader.pages)
        metadata["pages"] = str(count)
        deadline = time.monotonic() + PDF_TIME_BUDGET
        for i in range(min(count, MAX_PDF_PAGES)):
            if time.monotonic() > deadline:
                break
            try:
                pages.append((reader.pages[i].extract_text() or "").replace("\x00", "").strip())
            except Exception:  # noqa: BLE001 - one broken page must not lose the others
                pages.append("")
        if len(pages) < count:
            metadata["truncated"] = f"text of pages 1-{len(pages)} of {count}"
    except UnparsableFile:
        raise
    except Exception as e:  # noqa: BLE001 - pypdf raises many types on hostile input
        raise UnparsableFile(f"{filename!r} is not a readable PDF ({type(e).__name__}: {e})") from None
    return "\n\n".join(p for p in pages if p), metadata


def _pdf_info(reader: Any) -> dict[str, str]:
    """Title, author, ... from the document information dictionary; a broken one is skipped."""
    try:
        info = reader.metadata
        if info is None:
            return {}
        fields = (("title", info.title), ("author", info.author), ("subject", info.subject),
                  ("keywords", info.keywords), ("creator", info.creator))  # fmt: skip
        return {key: _clean(value) for key, value in fields if _clean(value)}
    except Exception:  # noqa: BLE001 - the text matters more than the metadata
        return {}


def _pdf_decrypt(reader: object) -> bool:
    """Many PDFs are encrypted with an empty user password (print/copy restrictions only)."""
    try:
        return bool(reader.decrypt(""))  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - unsupported algorithm, missing crypto dependency, ...
        return False


def _parse_docx(filename: str, data: bytes) -> tuple[str, dict[str, str]]:
    import docx
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    # zipfile never unpacks more than an entry's declared size, so checking the declared sizes
    # bounds what python-docx can inflate.
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            entries = archive.infolist()
    except Exception:  # noqa: BLE001 - BadZipFile, truncated directory, ...
        raise UnparsableFile(f"{filename!r} is not a readable DOCX file (not a zip archive)") from None
    if len(entries) > MAX_DOCX_ENTRIES or sum(e.file_size for e in entries) > MAX_DOCX_UNPACKED:
        raise UnparsableFile(f"{filename!r} unpacks to more than {MAX_DOCX_UNPACKED >> 20} MiB")

    def blocks(container: object, depth: int) -> list[str]:
        out: list[str] = []
        for item in container.iter_inner_content():  # type: ignore[attr-defined]
            if isinstance(item, Paragraph):
                out.append(item.text)
            elif isinstance(item, Table) and depth < 8:
                for row in item.rows:
                    seen: list[object] = []
                    cells: list[str] = []
                    for cell in row.cells:
                        if any(cell._tc is s for s in seen):  # a merged cell repeats itself
                            continue
                        seen.append(cell._tc)
                        cells.append(" ".join(" ".join(blocks(cell, depth + 1)).split()))
                    if any(cells):
                        out.append(" | ".join(cells))
        return out

    try:
        document = docx.Document(io.BytesIO(data))
        text = re.sub(r"\n{3,}", "\n\n", "\n".join(blocks(document, 0))).strip()  # runs of empty paragraphs
        props = document.core_properties
        fields = (("title", props.title), ("author", props.author), ("subject", props.subject),
                  ("keywords", props.keywords), ("description", props.comments))  # fmt: skip
    except Exception as e:  # noqa: BLE001 - python-docx and lxml raise many types
        raise UnparsableFile(f"{filename!r} is not a readable DOCX file ({type(e).__name__}: {e})") from None
    return text, {key: _clean(value) for key, value in fields if _clean(value)}

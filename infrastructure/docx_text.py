"""Text and core properties of a DOCX file, unpacked under a byte budget.

A DOCX is a zip archive, and a zip archive declares its entries' sizes, which a hostile one
can get wrong on purpose (zipfile inflates a whole deflate stream, then cuts it to the declared
size). So each XML part is inflated here straight from its raw deflate data, in bounded steps,
counting what comes out against the budget and checking the CRC; nothing the archive declares
about sizes is trusted. The parts are then handed to python-docx in a new, uncompressed archive.
Parts that are not XML (images, fonts, embedded files) are replaced by empty ones: text
extraction never reads them, so they are never inflated.
"""

from __future__ import annotations

import io
import re
import struct
import zipfile
import zlib

from infrastructure.parse_limits import Budget, UnparsableFile, clean_field

MAX_ENTRIES = 10_000
XML_SUFFIXES = (".xml", ".rels")
_STEP = 1 << 20  # at most this many bytes come out of the decompressor at a time
_LOCAL_HEADER = struct.Struct("<4s22xHH")  # signature, ..., name length, extra length


def docx_to_text(filename: str, data: bytes, budget: Budget) -> tuple[str, dict[str, str]]:
    import docx

    repacked = _repack(filename, data, budget)
    try:
        document = docx.Document(io.BytesIO(repacked))
        text = re.sub(r"\n{3,}", "\n\n", "\n".join(_blocks(document, 0, budget))).strip()  # runs of empty paragraphs
        props = document.core_properties
        fields = (("title", props.title), ("author", props.author), ("subject", props.subject),
                  ("keywords", props.keywords), ("description", props.comments))  # fmt: skip
    except UnparsableFile:
        raise
    except Exception as e:  # noqa: BLE001 - python-docx and lxml raise many types
        raise UnparsableFile(f"{filename!r} is not a readable DOCX file ({type(e).__name__}: {e})") from None
    return text, {key: clean_field(value) for key, value in fields if clean_field(value)}


def _blocks(container: object, depth: int, budget: Budget) -> list[str]:
    """Paragraphs, and table rows as `cell | cell`, in document order (nested tables too).
    Every paragraph read counts against the text budget, so a cell that a merge repeats on
    many rows is counted each time it is read."""
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    out: list[str] = []
    for item in container.iter_inner_content():  # type: ignore[attr-defined]
        if isinstance(item, Paragraph):
            out.append(item.text)
            budget.add_text(len(out[-1]) + 1)
        elif isinstance(item, Table) and depth < 8:
            for row in item.rows:
                seen: list[object] = []
                cells: list[str] = []
                for cell in row.cells:
                    if any(cell._tc is s for s in seen):  # a merged cell repeats itself
                        continue
                    seen.append(cell._tc)
                    cells.append(" ".join(" ".join(_blocks(cell, depth + 1, budget)).split()))
                if any(cells):
                    out.append(" | ".join(cells))
    return out


def _repack(filename: str, data: bytes, budget: Budget) -> bytes:
    """The archive again, uncompressed, with every XML part inflated under the budget."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:  # reads the central directory only
            entries = archive.infolist()
    except Exception:  # noqa: BLE001 - BadZipFile, truncated directory, ...
        raise UnparsableFile(f"{filename!r} is not a readable DOCX file (not a zip archive)") from None
    if len(entries) > MAX_ENTRIES:
        raise UnparsableFile(f"{filename!r} has more than {MAX_ENTRIES} parts; it is not a DOCX file")
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as repacked:
        for info in entries:
            if info.is_dir():
                continue
            wanted = info.filename.lower().endswith(XML_SUFFIXES)
            content = _inflate(filename, data, info, budget) if wanted else b""
            repacked.writestr(zipfile.ZipInfo(info.filename), content)
    return out.getvalue()


def _inflate(filename: str, data: bytes, info: zipfile.ZipInfo, budget: Budget) -> bytes:
    if info.flag_bits & 0x1:
        raise UnparsableFile(f"{filename!r} is encrypted; upload it without a password")
    raw = _raw_member(filename, data, info)
    if info.compress_type == zipfile.ZIP_STORED:
        budget.add_unpacked(len(raw))
        content = bytes(raw)
    elif info.compress_type == zipfile.ZIP_DEFLATED:
        content = _bounded_inflate(filename, raw, budget)
    else:
        raise UnparsableFile(f"{filename!r} uses a compression method DOCX files do not use")
    if zlib.crc32(content) != info.CRC:
        raise UnparsableFile(f"{filename!r} is corrupt (part {info.filename!r} fails its checksum)")
    return content


def _raw_member(filename: str, data: bytes, info: zipfile.ZipInfo) -> memoryview:
    """The entry's compressed bytes, located through its local header."""
    start = info.header_offset
    if start < 0 or start + _LOCAL_HEADER.size > len(data):
        raise UnparsableFile(f"{filename!r} is not a readable DOCX file (broken zip directory)")
    signature, name_length, extra_length = _LOCAL_HEADER.unpack_from(data, start)
    if signature != b"PK\x03\x04":
        raise UnparsableFile(f"{filename!r} is not a readable DOCX file (broken zip directory)")
    begin = start + _LOCAL_HEADER.size + name_length + extra_length
    return memoryview(data)[begin:begin + info.compress_size]


def _bounded_inflate(filename: str, raw: memoryview, budget: Budget) -> bytes:
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    pieces: list[bytes] = []
    pending: bytes | memoryview = raw
    try:
        while not inflater.eof:
            piece = inflater.decompress(pending, _STEP)
            budget.add_unpacked(len(piece))
            pieces.append(piece)
            pending = inflater.unconsumed_tail
            if not pending and len(piece) < _STEP:
                break  # all input used and no output left inside the inflater
    except zlib.error as e:
        raise UnparsableFile(f"{filename!r} is corrupt ({e})") from None
    if not inflater.eof:
        raise UnparsableFile(f"{filename!r} is corrupt (a compressed part is cut short)")
    return b"".join(pieces)

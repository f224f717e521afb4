"""Hostile documents built on the spot: decompression bombs and page floods, small on the wire.

- `docx_bomb`: a valid DOCX whose `word/document.xml` is one paragraph repeated until it
  unpacks to `unpacked` bytes (deflate packs it about 340:1, so 240 MiB ships in ~730 KB).
- `docx_bomb(..., lie=True)`: the same, with both zip headers declaring 1 KiB for that entry.
- `pdf_flate_bomb`: one page whose FlateDecode content stream inflates to `inflated` bytes of
  text-showing operators.
- `pdf_page_flood`: `pages` pages sharing one content stream, all objects packed in compressed
  object streams behind a cross-reference stream (PDF 1.5), so the file stays small.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib

import docx

PARAGRAPH = b"<w:p><w:r><w:t>lorem ipsum</w:t></w:r></w:p>"
_W = b"http://schemas.openxmlformats.org/wordprocessingml/2006/main"
DOCUMENT_XML = "word/document.xml"


def _docx_parts() -> dict[str, bytes]:
    buffer = io.BytesIO()
    document = docx.Document()
    document.add_paragraph("A normal first paragraph.")
    document.save(buffer)
    with zipfile.ZipFile(buffer) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist()}


def docx_bomb(unpacked: int = 240 << 20, *, lie: bool = False) -> bytes:
    """A DOCX of well under 1 MB whose main document part unpacks to about `unpacked` bytes."""
    head = b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<w:document xmlns:w="' + _W + b'"><w:body>'
    tail = b"</w:body></w:document>"
    block = PARAGRAPH * (1 << 14)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name, data in _docx_parts().items():
            if name != DOCUMENT_XML:
                archive.writestr(name, data)
        with archive.open(DOCUMENT_XML, "w", force_zip64=False) as entry:
            entry.write(head)
            written = len(head)
            while written < unpacked:
                entry.write(block)
                written += len(block)
            entry.write(tail)
    data = out.getvalue()
    return _lie_about_size(data, DOCUMENT_XML, 1024) if lie else data


def _lie_about_size(data: bytes, member: str, size: int) -> bytes:
    """Rewrite `member`'s uncompressed size in its local header and its central directory entry."""
    out = bytearray(data)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        info = archive.getinfo(member)
    assert out[info.header_offset:info.header_offset + 4] == b"PK\x03\x04"
    struct.pack_into("<I", out, info.header_offset + 22, size)
    name = member.encode()
    end = data.rindex(b"PK\x05\x06")  # end of central directory record
    central = struct.unpack_from("<I", out, end + 16)[0]
    while True:
        name_len = struct.unpack_from("<H", out, central + 28)[0]
        extra_len, comment_len = struct.unpack_from("<HH", out, central + 30)
        if bytes(out[central + 46:central + 46 + name_len]) == name:
            struct.pack_into("<I", out, central + 24, size)
            return bytes(out)
        central += 46 + name_len + extra_len + comment_len
        assert out[central:central + 4] == b"PK\x01\x02", "member not in the central directory"


# --- PDF ---

_TEXT_LINE = b"BT /F1 12 Tf 72 720 Td (lorem ipsum dolor sit amet) Tj ET\n"


def pdf_flate_bomb(inflated: int = 64 << 20) -> bytes:
    """One page whose content stream is `inflated` bytes of text operators, deflated."""
    compressor = zlib.compressobj(9)
    block = _TEXT_LINE * (1 << 12)
    chunks = [compressor.compress(block) for _ in range(max(1, inflated // len(block)))]
    stream = b"".join(chunks) + compressor.flush()
    objects = {
        1: b"<< /Type /Catalog /Pages 2 0 R >>",
        2: b"<< /Type /Pages /Kids [4 0 R] /Count 1 >>",
        3: b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        4: b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 5 0 R"
           b" /Resources << /Font << /F1 3 0 R >> >> >>",
        5: b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream) + stream + b"\nendstream",
    }
    return _classic_pdf(objects)


def _classic_pdf(objects: dict[int, bytes]) -> bytes:
    out = bytearray(b"%PDF-1.4\n")
    offsets = {}
    for obj_id in sorted(objects):
        offsets[obj_id] = len(out)
        out += b"%d 0 obj\n" % obj_id + objects[obj_id] + b"\nendobj\n"
    xref, size = len(out), max(objects) + 1
    out += b"xref\n0 %d\n0000000000 65535 f \n" % size
    out += b"".join(b"%010d 00000 n \n" % offsets[i] for i in range(1, size))
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (size, xref)
    return bytes(out)


def pdf_page_flood(pages: int = 50_000, lines_per_page: int = 100, *, declared: int | None = None) -> bytes:
    """`pages` pages, each showing the same `lines_per_page` lines of text from one shared
    content stream; page dictionaries live in compressed object streams. `declared`: the page
    count the page tree claims (default: the true one)."""
    page_ids = range(5, 5 + pages)
    packed: dict[int, bytes] = {  # objects that go into object streams
        1: b"<< /Type /Catalog /Pages 2 0 R >>",
        2: b"<< /Type /Pages /Count %d /Kids [" % (pages if declared is None else declared)
           + b" ".join(b"%d 0 R" % p for p in page_ids) + b"] >>",
        3: b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    }
    page = (b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
            b" /Resources << /Font << /F1 3 0 R >> >> >>")
    packed.update({p: page for p in page_ids})
    content = zlib.compress(_TEXT_LINE * lines_per_page, 9)
    out = bytearray(b"%PDF-1.5\n%\xe2\xe3\xcf\xd3\n")
    entries: dict[int, tuple[int, int, int]] = {0: (0, 0, 0xFFFF), 4: (1, len(out), 0)}  # (type, field 2, field 3)
    out += (b"4 0 obj\n<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(content)
            + content + b"\nendstream\nendobj\n")
    next_id = _object_streams(out, entries, packed, first_id=5 + pages)
    _xref_stream(out, entries, next_id)
    return bytes(out)


def _object_streams(out: bytearray, entries: dict[int, tuple[int, int, int]], packed: dict[int, bytes],
                    first_id: int) -> int:
    """Append `packed` as object streams of 5,000 objects; the next free object number."""
    ids, next_id = sorted(packed), first_id
    for start in range(0, len(ids), 5000):
        group, stream_id = ids[start:start + 5000], next_id
        next_id += 1
        header, body = [], bytearray()
        for index, obj_id in enumerate(group):
            header.append(b"%d %d" % (obj_id, len(body)))
            body += packed[obj_id] + b"\n"
            entries[obj_id] = (2, stream_id, index)
        head = b" ".join(header) + b"\n"
        data = zlib.compress(head + body, 9)
        entries[stream_id] = (1, len(out), 0)
        out += (b"%d 0 obj\n<< /Type /ObjStm /N %d /First %d /Length %d /Filter /FlateDecode >>\nstream\n"
                % (stream_id, len(group), len(head), len(data)) + data + b"\nendstream\nendobj\n")
    return next_id


def _xref_stream(out: bytearray, entries: dict[int, tuple[int, int, int]], xref_id: int) -> None:
    entries[xref_id] = (1, len(out), 0)
    size = xref_id + 1
    rows = b"".join(struct.pack(">BIH", *entries.get(i, (0, 0, 0))) for i in range(size))
    data = zlib.compress(rows, 9)
    out += (b"%d 0 obj\n<< /Type /XRef /Size %d /W [1 4 2] /Root 1 0 R /Length %d /Filter /FlateDecode >>\n"
            b"stream\n" % (xref_id, size, len(data)) + data + b"\nendstream\nendobj\n")
    out += b"startxref\n%d\n%%%%EOF\n" % entries[xref_id][1]

"""Parsers on real files: PDFs written by hand, DOCX written by python-docx, hostile input."""

from __future__ import annotations

import io
import json
import time
import zipfile

import docx
import pypdf
import pytest

from infrastructure.parsers import (
    DOCX_MIME,
    ParsedDocument,
    ParseLimitExceeded,
    ParseLimits,
    UnparsableFile,
    UnsafeName,
    UnsupportedFileType,
    accepted_file_types,
    parse,
    safe_filename,
)
from tests.support.files import make_pdf

# --- file builders ---


def make_docx() -> bytes:
    document = docx.Document()
    document.core_properties.title = "Quarterly Report"
    document.core_properties.author = "Ada Lovelace"
    document.add_heading("Results", level=1)
    document.add_paragraph("Revenue grew in every region.")
    table = document.add_table(rows=2, cols=3)
    for row, values in zip(table.rows, (("Region", "Q1", "Q2"), ("North", "10", "12"))):
        for cell, value in zip(row.cells, values):
            cell.text = value
    merged = document.add_table(rows=1, cols=2)
    merged.cell(0, 0).merge(merged.cell(0, 1)).text = "merged cell"
    document.add_paragraph("Closing remarks.")
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


# --- happy paths ---


def test_handwritten_pdf_is_readable_by_pypdf_itself() -> None:
    reader = pypdf.PdfReader(io.BytesIO(make_pdf([["Hello PDF"]])))
    assert "Hello PDF" in reader.pages[0].extract_text()


def test_pdf_text_of_all_pages_and_metadata() -> None:
    data = make_pdf([["First page line", "second line"], ["Page two (with parens)"]],
                    info={"Title": "A Tiny PDF", "Author": "Tester"})  # fmt: skip
    doc = parse("tiny.pdf", data)
    assert isinstance(doc, ParsedDocument)
    assert doc.mime == "application/pdf"
    assert doc.title == "A Tiny PDF"
    assert doc.metadata["author"] == "Tester"
    assert doc.metadata["pages"] == "2"
    first, second = doc.text.split("\n\n")
    assert "First page line" in first and "second line" in first
    assert second == "Page two (with parens)"


def test_pdf_without_title_uses_the_file_name() -> None:
    doc = parse("report.PDF", make_pdf([["body"]]))
    assert doc.title == "report.PDF"
    assert doc.text == "body"


def test_pdf_over_the_page_limit_is_refused_not_truncated() -> None:
    data = make_pdf([["one"], ["two"], ["three"]])
    assert parse("long.pdf", data, limits=ParseLimits(max_pages=3)).text == "one\n\ntwo\n\nthree"
    with pytest.raises(ParseLimitExceeded, match="'long.pdf' has 3 pages; the limit is PARSE_MAX_PAGES=2 pages"):
        parse("long.pdf", data, limits=ParseLimits(max_pages=2))


def test_docx_paragraphs_tables_and_core_properties() -> None:
    doc = parse("report.docx", make_docx())
    assert doc.mime == DOCX_MIME
    assert doc.title == "Quarterly Report"
    assert doc.metadata["author"] == "Ada Lovelace"
    lines = doc.text.split("\n")
    assert lines == [
        "Results",
        "Revenue grew in every region.",
        "Region | Q1 | Q2",
        "North | 10 | 12",
        "merged cell",  # a merged cell is listed once
        "Closing remarks.",
    ]


def test_plain_text_with_bom_and_markdown_kept_as_is() -> None:
    doc = parse("notes.txt", "\ufeffhello\r\nworld  \n".encode())
    assert doc.text == "hello\r\nworld  \n"
    assert (doc.mime, doc.title, doc.metadata) == ("text/plain", "notes.txt", {})
    md = "# Title\n\n* item with `code`\n\n<Component prop={1} />\n"
    for name in ("a.md", "a.markdown", "a.mdx"):
        parsed = parse(name, md.encode())
        assert (parsed.text, parsed.mime) == (md, "text/markdown")


def test_utf16_with_bom() -> None:
    assert parse("u.txt", "grüße".encode("utf-16")).text == "grüße"


def test_invalid_utf8_is_replaced_in_text_formats() -> None:
    assert parse("latin.txt", b"caf\xe9 au lait").text == "caf\ufffd au lait"


def test_html_visible_text_only() -> None:
    page = b"""<!doctype html><html lang="en"><head>
      <meta charset="windows-1252"><title>  Caf\xe9   page </title>
      <meta name="description" content="About the caf\xe9"><meta name="author" content="Ann">
      <style>body { color: red }</style><script>document.write("<p>hidden</p>")</script></head>
      <body><h1>Menu</h1><p>Coffee   and <b>tea</b>.<br>Open daily.</p>
      <ul><li>Espresso</li><li>Latte</li></ul>
      <table><tr><th>Item</th><th>Price</th></tr><tr><td>Tea</td><td>2</td></tr></table>
      <noscript>enable js</noscript><!-- a comment --><div>Fish &amp; chips&nbsp;today</div></body></html>"""
    doc = parse("menu.html", page)
    assert doc.text == (
        "Menu\n\nCoffee and tea.\nOpen daily.\n\n- Espresso\n- Latte\n\n"
        "Item | Price\nTea | 2\n\nFish & chips today"
    )
    assert doc.title == "Café page"
    assert doc.mime == "text/html"
    assert doc.metadata == {
        "title": "Café page", "description": "About the café", "author": "Ann", "language": "en"
    }  # fmt: skip


def test_html_is_linear_on_hostile_markup() -> None:
    start = time.monotonic()
    with pytest.raises(UnparsableFile):
        parse("evil.htm", b"<a" * 200_000)  # quadratic in Python 3.11's html.parser
    assert parse("deep.html", b"<div>" * 1000 + b"deep text").text == "deep text"
    with pytest.raises(UnparsableFile):  # past libxml2's depth limit the rest is dropped
        parse("deeper.html", b"<div>" * 100_000 + b"deep text")
    assert time.monotonic() - start < 2


def test_csv_rows_as_header_value_pairs() -> None:
    data = b'name,age,city\nAda,36,London\n"Bob, Jr.",,"Paris\nFrance"\n\n'
    doc = parse("people.csv", data)
    assert doc.text == "name: Ada, age: 36, city: London\nname: Bob, Jr., city: Paris France"
    assert doc.mime == "text/csv"
    assert parse("semi.csv", b"a;b\n1;2\n").text == "a: 1, b: 2"
    assert parse("header-only.csv", b"a,b,c\n").text == "a, b, c"


def test_json_is_pretty_printed() -> None:
    doc = parse("data.json", b'{"name":"\xc3\xa9t\xc3\xa9","list":[1,2]}')
    assert json.loads(doc.text) == {"name": "été", "list": [1, 2]}
    assert doc.text.startswith('{\n  "name": "été",')
    assert doc.mime == "application/json"


def test_type_from_content_type_when_the_extension_is_unknown() -> None:
    doc = parse("download", b"caf\xe9", "text/plain; charset=ISO-8859-1")
    assert (doc.text, doc.mime) == ("café", "text/plain")
    assert parse("page", b"<p>hi</p>", "text/html").text == "hi"
    assert parse("api", b"[1]", "application/problem+json").mime == "application/json"
    # The extension wins over the content type.
    assert parse("data.json", b'{"a": 1}', "text/html").mime == "application/json"


def test_accepted_file_types_shape() -> None:
    types = accepted_file_types()
    assert types["text/plain"] == [".txt", ".md", ".markdown", ".mdx"]
    assert types["application/pdf"] == [".pdf"]
    assert types[DOCX_MIME] == [".docx"]
    assert types["text/html"] == [".html", ".htm"]
    assert set(types) == {
        "text/plain", "text/html", "text/csv", "application/json", "application/pdf", DOCX_MIME
    }  # fmt: skip


# --- errors ---


def test_unsupported_type_names_the_accepted_extensions() -> None:
    for args in (("tool.exe", b"MZ"), ("tool.exe", b"MZ", "application/octet-stream"), ("noext", b"x")):
        with pytest.raises(UnsupportedFileType) as caught:
            parse(*args)
        assert ".pdf" in str(caught.value) and ".docx" in str(caught.value)
    assert issubclass(UnsupportedFileType, ValueError)


@pytest.mark.parametrize(
    "data",
    [
        b"not a pdf at all",
        b"%PDF-1.7\n1 0 obj << /Type /Catalog /Pages 9 0 R >> endobj\n%%EOF",
        make_pdf([["x"]])[:60],
        bytes(range(256)) * 8,
    ],
)
def test_corrupt_pdf(data: bytes) -> None:
    with pytest.raises(UnparsableFile):
        parse("bad.pdf", data)


def test_pdf_without_text_and_encrypted_pdf() -> None:
    with pytest.raises(UnparsableFile, match="no text"):
        parse("scan.pdf", make_pdf([[]]))
    writer = pypdf.PdfWriter()
    writer.add_blank_page(width=200, height=200)
    writer.encrypt("secret")
    buffer = io.BytesIO()
    writer.write(buffer)
    with pytest.raises(UnparsableFile, match="encrypted"):
        parse("locked.pdf", buffer.getvalue())


def _zip(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in entries.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def test_corrupt_docx() -> None:
    for data in (b"PK\x03\x04 truncated", b"plain bytes", _zip({"hello.txt": b"not a word document"}),
                 make_docx()[:500]):  # fmt: skip
        with pytest.raises(UnparsableFile, match="DOCX"):
            parse("bad.docx", data)


def test_docx_sizes_the_archive_declares_are_not_trusted() -> None:
    """Declaring 300 MiB for a small part changes nothing: what is inflated is counted."""
    data = bytearray(make_docx())
    start = 0
    while (header := data.find(b"PK\x01\x02", start)) >= 0:  # every central directory entry
        data[header + 24 : header + 28] = (300 << 20).to_bytes(4, "little")  # its uncompressed size
        start = header + 4
    assert parse("report.docx", bytes(data)) == parse("report.docx", make_docx())


def test_empty_docx_has_no_text() -> None:
    buffer = io.BytesIO()
    docx.Document().save(buffer)
    with pytest.raises(UnparsableFile, match="no text"):
        parse("empty.docx", buffer.getvalue())


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("empty.txt", b""),
        ("blank.md", b"  \n\t\n"),
        ("bom-only.txt", b"\xef\xbb\xbf"),
        ("scripts.html", b"<html><head><script>x()</script></head><body> <style>p{}</style> </body></html>"),
        ("comment.html", b"<!-- nothing -->"),
        ("empty.csv", b"\n,,\n"),
        ("empty.json", b"{}"),
    ],
)
def test_no_text(name: str, data: bytes) -> None:
    with pytest.raises(UnparsableFile, match="no text"):
        parse(name, data)


@pytest.mark.parametrize("data", [b"{'single': 'quotes'}", b'{"a": 1,}', b"[" * 100_000, b"1" * 5000])
def test_invalid_json(data: bytes) -> None:
    with pytest.raises(UnparsableFile, match="not valid JSON"):
        parse("bad.json", data)


@pytest.mark.parametrize("data", [bytes(range(256)) * 4, bytes(range(1, 256)) * 4, b"text\x00with nul"])
def test_binary_junk_in_a_text_file(data: bytes) -> None:
    for name in ("junk.txt", "junk.csv", "junk.html", "junk.md"):
        with pytest.raises(UnparsableFile, match="binary"):
            parse(name, data)


# --- file names ---


def test_safe_filename_accepts_plain_names() -> None:
    assert safe_filename("  report.pdf \n") == "report.pdf"
    assert safe_filename("résumé (final) v2.docx") == "résumé (final) v2.docx"
    assert safe_filename("...hidden") == "...hidden"
    assert safe_filename("é" * 127 + "x") == "é" * 127 + "x"  # 255 bytes


@pytest.mark.parametrize(
    "name",
    ["", "   ", "../x", "x/..", "..", ".", "/etc/passwd", "a/b", "a\\b", "..\\x", "a\x00b", "a\nb",
     "C:evil.txt", "x" * 256, "é" * 128],  # fmt: skip
)
def test_safe_filename_rejects(name: str) -> None:
    with pytest.raises(UnsafeName):
        safe_filename(name)
    assert issubclass(UnsafeName, ValueError)

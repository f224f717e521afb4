"""The parse limits, counted while reading: real bombs, lying archives, text that outgrows its file.

These run the parsers in this process (what each worker runs); tests/integration/test_parse_pool.py
runs them in the sandbox, and tests/e2e/test_parse_bombs.py through the HTTP API."""

from __future__ import annotations

import io
import json
import zipfile

import pytest

from infrastructure.parsers import ParseLimitExceeded, ParseLimits, UnparsableFile, parse
from harness.bombs import docx_bomb, pdf_flate_bomb, pdf_page_flood
from tests.support.files import make_pdf
from tests.unit.test_parsers import make_docx

SMALL = ParseLimits(max_unpacked_bytes=1 << 20, max_text_chars=10_000, max_pages=10)


def _setting_in(error: pytest.ExceptionInfo[BaseException], name: str) -> None:
    message = str(error.value)
    assert f"the limit is {name}=" in message and f"raise {name}" in message, message


@pytest.mark.parametrize("lie", [False, True], ids=["honest", "lying-header"])
def test_docx_bomb_is_refused_after_the_budget_not_the_whole_bomb(lie: bool) -> None:
    bomb = docx_bomb(240 << 20, lie=lie)
    assert len(bomb) < 1 << 20
    with pytest.raises(ParseLimitExceeded, match="unpacks to more than 32 MiB") as caught:
        parse("bomb.docx", bomb)
    _setting_in(caught, "PARSE_MAX_UNPACKED_BYTES")


def test_docx_under_the_budget_parses_and_one_byte_less_refuses() -> None:
    data = make_docx()
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        xml = sum(i.file_size for i in archive.infolist() if i.filename.endswith((".xml", ".rels")))
    assert parse("r.docx", data, limits=ParseLimits(max_unpacked_bytes=xml)).title == "Quarterly Report"
    with pytest.raises(ParseLimitExceeded):
        parse("r.docx", data, limits=ParseLimits(max_unpacked_bytes=xml - 1))


def test_docx_parts_that_are_not_xml_are_never_inflated() -> None:
    """100 MiB of zeros as an embedded file: text extraction never reads it, so it costs nothing."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(make_docx())) as source, zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as out:
        for info in source.infolist():
            out.writestr(info, source.read(info))
        out.writestr("word/embeddings/blob.bin", bytes(100 << 20))
    assert len(buffer.getvalue()) < 1 << 20
    assert parse("embedded.docx", buffer.getvalue(), limits=SMALL).title == "Quarterly Report"


def test_docx_with_a_corrupt_part_is_unparsable() -> None:
    data = bytearray(make_docx())
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as archive:
        info = archive.getinfo("word/document.xml")
    body = info.header_offset + 30 + len(info.filename) + len(info.extra)
    data[body + 20 : body + 40] = bytes(20)  # inside the deflate stream
    with pytest.raises(UnparsableFile, match="corrupt"):
        parse("broken.docx", bytes(data))


def test_docx_text_budget_counts_every_paragraph() -> None:
    with pytest.raises(ParseLimitExceeded, match="more than 20 characters of text") as caught:
        parse("r.docx", make_docx(), limits=ParseLimits(max_text_chars=20))
    _setting_in(caught, "PARSE_MAX_TEXT_CHARS")


def test_pdf_flate_bomb_is_refused_while_inflating() -> None:
    bomb = pdf_flate_bomb(64 << 20)
    assert len(bomb) < 256 << 10
    with pytest.raises(ParseLimitExceeded, match="unpacks to more than 32 MiB") as caught:
        parse("flate.pdf", bomb)
    _setting_in(caught, "PARSE_MAX_UNPACKED_BYTES")


def test_pdf_content_counts_once_per_page_that_shows_it() -> None:
    """Pages sharing one stream: each page interprets it again, so each page counts it."""
    few = pdf_page_flood(5, lines_per_page=200)  # 5 x ~11.6 KB of content
    assert parse("few.pdf", few, limits=ParseLimits(max_unpacked_bytes=60_000)).metadata["pages"] == "5"
    with pytest.raises(ParseLimitExceeded, match="unpacks to more than 40000 bytes"):
        parse("few.pdf", few, limits=ParseLimits(max_unpacked_bytes=40_000))


@pytest.mark.parametrize("declared", [None, 1], ids=["true-count", "lying-count"])
def test_pdf_page_flood_is_refused_by_pages(declared: int | None) -> None:
    flood = pdf_page_flood(50_000, declared=declared)
    with pytest.raises(ParseLimitExceeded, match="pages; the limit is PARSE_MAX_PAGES=2000") as caught:
        parse("pages.pdf", flood)
    assert ("has 50000 pages" if declared is None else "has more than 2000 pages") in str(caught.value)


def test_pdf_text_budget() -> None:
    data = make_pdf([["x" * 60], ["y" * 60]])
    assert len(parse("t.pdf", data, limits=ParseLimits(max_text_chars=130)).text) == 122
    with pytest.raises(ParseLimitExceeded, match="PARSE_MAX_TEXT_CHARS=100"):
        parse("t.pdf", data, limits=ParseLimits(max_text_chars=100))


def test_csv_whose_header_repeats_on_every_row_is_capped() -> None:
    header = ",".join(f"a rather long column name number {i}" for i in range(50))
    rows = "\n".join(",".join("1" * 50) for _ in range(200))
    data = f"{header}\n{rows}\n".encode()
    assert len(data) < 32_000  # and its text would be over 400,000 characters
    with pytest.raises(ParseLimitExceeded, match="more than 10000 characters of text"):
        parse("wide.csv", data, limits=SMALL)


def test_deeply_nested_json_is_capped_while_printing() -> None:
    data = ("[" * 500 + ",".join(["1"] * 100) + "]" * 500).encode()
    with pytest.raises(ParseLimitExceeded, match="PARSE_MAX_TEXT_CHARS"):
        parse("deep.json", data, limits=SMALL)
    assert json.loads(parse("deep.json", data).text) == json.loads(data)


def test_plain_text_and_html_over_the_text_limit() -> None:
    with pytest.raises(ParseLimitExceeded, match="PARSE_MAX_TEXT_CHARS=10000"):
        parse("long.txt", b"word " * 2001, limits=SMALL)
    assert parse("ok.txt", b"word " * 2000, limits=SMALL).text == "word " * 2000
    with pytest.raises(ParseLimitExceeded, match="PARSE_MAX_TEXT_CHARS"):
        parse("long.html", b"<p>" + b"word " * 2001 + b"</p>", limits=SMALL)

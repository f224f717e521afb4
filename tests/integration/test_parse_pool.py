"""The sandboxed parse port: real worker processes, real caps, real bombs.

Each test opens its own pool (worker processes of this test run) and closes it, then checks
that no worker is left behind."""

from __future__ import annotations

import io
import os
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import docx
import pytest

from infrastructure import parsers
from infrastructure.parse_limits import ParseLimitExceeded, ParseLimits
from infrastructure.parse_pool import ParserPool, ParsingBusy, SandboxSettings
from harness.bombs import docx_bomb, pdf_flate_bomb, pdf_page_flood
from tests.support.files import make_pdf
from tests.unit.test_parsers import make_docx

GENEROUS = 60.0  # seconds: the point is seconds, not minutes, on a busy machine too


def worker_pids() -> set[int]:
    """Parse workers started by this process."""
    pids = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == os.getpid() and b"parse_worker" in cmdline:
            pids.add(int(entry.name))
    return pids


@contextmanager
def pool(**settings: object) -> Iterator[ParserPool]:
    opened = ParserPool(SandboxSettings(**{"timeout": GENEROUS, **settings}))  # type: ignore[arg-type]
    try:
        yield opened
    finally:
        opened.close()
        assert worker_pids() == set(), "a worker outlived its pool"


SAMPLES = [
    ("notes.txt", "\ufeffhello\r\nworld  \n".encode(), None),
    ("readme.md", b"# Title\n\n* item\n", None),
    ("page.html", b"<html><head><title>T</title></head><body><p>Hello <b>there</b></p></body></html>", None),
    ("people.csv", b"name,age\nAda,36\n", None),
    ("data.json", b'{"a": [1, 2], "b": "\xc3\xa9"}', None),
    ("download", b"caf\xe9", "text/plain; charset=ISO-8859-1"),
    ("tiny.pdf", make_pdf([["First page"], ["Second page"]], info={"Title": "Tiny", "Author": "Me"}), None),
    ("report.docx", make_docx(), None),
]


def test_every_format_parses_in_the_sandbox_exactly_as_in_process() -> None:
    with pool() as sandbox:
        sandbox.warm()
        for name, data, content_type in SAMPLES:
            assert sandbox.parse(name, data, content_type) == parsers.parse(name, data, content_type), name
        assert len(worker_pids()) == 1  # one warm worker served them all


def test_errors_keep_their_types_across_the_process_boundary() -> None:
    with pool() as sandbox:
        with pytest.raises(parsers.UnsupportedFileType, match="accepted extensions"):
            sandbox.parse("tool.exe", b"MZ")
        with pytest.raises(parsers.UnparsableFile, match="not a readable DOCX"):
            sandbox.parse("bad.docx", b"plain bytes")
        assert sandbox.parse("ok.txt", b"still fine").text == "still fine"
    with pool(limits=ParseLimits(max_pages=1)) as sandbox:
        with pytest.raises(ParseLimitExceeded, match="PARSE_MAX_PAGES=1"):
            sandbox.parse("two.pdf", make_pdf([["a"], ["b"]]))


@pytest.mark.parametrize("bomb", [
    pytest.param(lambda: ("bomb.docx", docx_bomb(240 << 20)), id="docx-240MiB"),
    pytest.param(lambda: ("liar.docx", docx_bomb(240 << 20, lie=True)), id="docx-lying-header"),
    pytest.param(lambda: ("flate.pdf", pdf_flate_bomb(64 << 20)), id="pdf-flate"),
    pytest.param(lambda: ("pages.pdf", pdf_page_flood(50_000)), id="pdf-50k-pages"),
])
def test_bombs_are_refused_by_the_byte_and_page_budgets(bomb) -> None:
    name, data = bomb()
    with pool() as sandbox:
        with pytest.raises(ParseLimitExceeded, match="An administrator can raise PARSE_MAX_(UNPACKED_BYTES|PAGES)"):
            sandbox.parse(name, data)
        assert sandbox.parse("after.txt", b"the same worker carries on").text == "the same worker carries on"


def _slow_docx() -> bytes:
    """16 MiB of tiny paragraphs: under the default byte budget, and many CPU seconds of python-docx."""
    return docx_bomb(16 << 20)


def test_a_worker_killed_by_the_cpu_cap_is_replaced() -> None:
    with pool(workers=1, cpu_seconds=1) as sandbox:
        sandbox.warm()
        before = worker_pids()
        with pytest.raises(ParseLimitExceeded, match="needs more than 1 s of CPU time.*PARSE_CPU_SECONDS=1 s"):
            sandbox.parse("slow.docx", _slow_docx())
        assert sandbox.parse("next.docx", make_docx()).title == "Quarterly Report"
        after = worker_pids()
        assert len(after) == 1 and not after & before


def test_a_worker_out_of_memory_is_refused_and_replaced() -> None:
    with pool(workers=1, memory_mb=300, limits=ParseLimits(max_unpacked_bytes=1 << 30)) as sandbox:
        with pytest.raises(ParseLimitExceeded, match="PARSE_MAX_MEMORY_MB=300 MB"):
            sandbox.parse("bomb.docx", docx_bomb(240 << 20))
        assert sandbox.parse("next.txt", b"fresh worker").text == "fresh worker"


def test_the_wall_clock_deadline_kills_the_worker() -> None:
    """The deadline runs from the moment a started worker has the file: starting a worker (slow
    on a busy machine) is not the file's fault, so the replacement's start-up does not count."""
    with pool(workers=1, timeout=1.0, cpu_seconds=600) as sandbox:
        with pytest.raises(ParseLimitExceeded, match="took longer than 1 s to parse.*PARSE_TIMEOUT=1 s"):
            sandbox.parse("slow.docx", _slow_docx())
        assert sandbox.parse("next.txt", b"replaced").text == "replaced"


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_a_file_beyond_the_worker_count_waits_then_gets_a_clear_busy_error() -> None:
    with pool(workers=1, queue_timeout=0.5) as sandbox:
        sandbox.warm()
        (pid,) = worker_pids()
        start = _cpu_seconds(pid)
        results: list[parsers.ParsedDocument] = []
        slow = threading.Thread(target=lambda: results.append(sandbox.parse("slow.docx", docx_bomb(4 << 20))))
        slow.start()
        deadline = time.monotonic() + GENEROUS
        while _cpu_seconds(pid) - start < 0.3:  # the one worker is busy with the slow file
            assert time.monotonic() < deadline and slow.is_alive()
            time.sleep(0.05)
        with pytest.raises(ParsingBusy, match="All 1 document parsers stayed busy for 0.5 s.*PARSE_WORKERS") as caught:
            sandbox.parse("waiting.txt", b"in the queue")
        assert caught.value.status == 503
        slow.join(GENEROUS)
        assert results and results[0].title == "slow.docx"
        assert sandbox.parse("after.txt", b"served").text == "served"


def test_a_worker_that_dies_while_idle_is_not_handed_out() -> None:
    with pool(workers=1) as sandbox:
        sandbox.warm()
        (pid,) = worker_pids()
        os.kill(pid, 9)
        assert sandbox.parse("a.txt", b"a new worker").text == "a new worker"


def _png(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    rows = b"".join(b"\x00" + b"\x80\x20\x20" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def test_a_normal_docx_with_an_image_part_parses_in_the_sandbox() -> None:
    document = docx.Document()
    document.add_paragraph("Caption below.")
    document.add_picture(io.BytesIO(_png(64, 64)))
    buffer = io.BytesIO()
    document.save(buffer)
    with pool() as sandbox:
        assert sandbox.parse("pic.docx", buffer.getvalue()) == parsers.parse("pic.docx", buffer.getvalue())


def test_workers_are_clean_interpreters_without_the_servers_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever this process imported (torch, if the embedding tests ran first) and holds in its
    environment (here a provider key and a database password) stays out of the workers."""
    monkeypatch.setenv("LLM_API_KEY", "sk-provider-secret-4711")
    monkeypatch.setenv("DATABASE_URL", "postgresql://user:db-secret-4711@host/db")
    with pool() as sandbox:
        assert sandbox.parse("a.txt", b"hello").text == "hello"
        (pid,) = worker_pids()
        environ = Path(f"/proc/{pid}/environ").read_bytes()
        maps = Path(f"/proc/{pid}/maps").read_text()
        rss_mb = int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    assert b"4711" not in environ
    assert "torch" not in maps and "faiss" not in maps
    assert rss_mb < 120  # the parsers alone; litellm or the model would add hundreds of MB

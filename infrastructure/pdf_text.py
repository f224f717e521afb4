"""Text and document information of a PDF, read under the parse budget.

pypdf inflates each stream with its output capped (its `Configuration`, set here from the
budget), so no single stream unpacks past the limit whatever its header says. Across the
document, the content streams a page shows count against the same budget before the page is
read (a stream shared by many pages counts once per page, as it is interpreted once per page),
and so does the extracted text. A PDF with more pages than the limit is refused outright.
"""

from __future__ import annotations

import io
from typing import Any

from infrastructure.parse_limits import Budget, ParseLimitExceeded, UnparsableFile, clean_field


def pdf_to_text(filename: str, data: bytes, budget: Budget) -> tuple[str, dict[str, str]]:
    import pypdf
    from pypdf.errors import LimitReachedError

    try:
        with pypdf.apply_configuration(**_reader_caps(budget)):
            return _read(filename, data, budget)
    except (UnparsableFile, MemoryError):
        raise
    except LimitReachedError as e:
        raise _over_reader_limit(filename, budget, e) from None
    except Exception as e:  # noqa: BLE001 - pypdf raises many types on hostile input
        raise UnparsableFile(f"{filename!r} is not a readable PDF ({type(e).__name__}: {e})") from None


def _reader_caps(budget: Budget) -> dict[str, Any]:
    """pypdf's own limits, from ours: no stream inflates past the byte budget, and walking the
    page tree stops soon after the page limit (a tree node is an entry too)."""
    cap = max(1, budget.limits.max_unpacked_bytes)
    return {
        "page_tree_maximum_entries": 2 * budget.limits.max_pages + 100,
        "zlib_maximum_output_length": cap, "lzw_maximum_output_length": cap,
        "run_length_maximum_output_length": cap, "brotli_maximum_output_length": cap,
        "jbig2_maximum_output_length": cap, "array_based_stream_maximum_output_length": cap,
        "jbig2dec_binary": None,  # never run an external decoder on an uploaded file
    }


def _over_reader_limit(filename: str, budget: Budget, error: Exception) -> ParseLimitExceeded:
    if str(error).startswith("Limit reached while decompressing"):  # the per-stream cap: our budget
        return budget.unpacked_refusal()
    if str(error).startswith("Maximum page tree entry limit"):
        return budget.pages_refusal(f"more than {budget.limits.max_pages}")
    return ParseLimitExceeded(f"{filename!r} is over a safety limit of the PDF reader ({error}).")


def _read(filename: str, data: bytes, budget: Budget) -> tuple[str, dict[str, str]]:
    import pypdf
    from pypdf.errors import LimitReachedError

    reader = pypdf.PdfReader(io.BytesIO(data), strict=False)
    if reader.is_encrypted and not _decrypt(reader):
        raise UnparsableFile(f"{filename!r} is an encrypted PDF; upload it without a password")
    metadata = _info(reader)
    declared = _declared_pages(reader)
    if declared is not None:  # refuse a file that says it is too long before walking its pages
        budget.check_pages(declared)
    count = len(reader.pages)
    budget.check_pages(count)
    metadata["pages"] = str(count)
    pages: list[str] = []
    for page in reader.pages:
        budget.add_unpacked(_content_size(page))
        try:
            text = (page.extract_text() or "").replace("\x00", "").strip()
        except (LimitReachedError, MemoryError):
            raise
        except Exception:  # noqa: BLE001 - one broken page must not lose the others
            text = ""
        budget.add_text(len(text) + 2)
        pages.append(text)
    return "\n\n".join(p for p in pages if p), metadata


def _declared_pages(reader: Any) -> int | None:
    try:
        return int(reader.trailer["/Root"]["/Pages"]["/Count"])
    except Exception:  # noqa: BLE001 - missing or broken: walking the tree will tell
        return None


def _content_size(page: Any) -> int:
    """Bytes of the page's decoded content streams (0 for a page whose contents are broken)."""
    from pypdf.errors import LimitReachedError

    try:
        contents = page.get_contents()
        return len(contents.get_data()) if contents is not None else 0
    except (LimitReachedError, MemoryError):
        raise
    except Exception:  # noqa: BLE001 - extraction will find the page empty too
        return 0


def _info(reader: Any) -> dict[str, str]:
    """Title, author, ... from the document information dictionary; a broken one is skipped."""
    try:
        info = reader.metadata
        if info is None:
            return {}
        fields = (("title", info.title), ("author", info.author), ("subject", info.subject),
                  ("keywords", info.keywords), ("creator", info.creator))  # fmt: skip
        return {key: clean_field(value) for key, value in fields if clean_field(value)}
    except Exception:  # noqa: BLE001 - the text matters more than the metadata
        return {}


def _decrypt(reader: Any) -> bool:
    """Many PDFs are encrypted with an empty user password (print/copy restrictions only)."""
    try:
        return bool(reader.decrypt(""))
    except Exception:  # noqa: BLE001 - unsupported algorithm, missing crypto dependency, ...
        return False

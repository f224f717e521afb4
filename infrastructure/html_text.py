"""Visible text of an HTML page, with its <title> and meta description/author/keywords.

lxml (libxml2) parses in linear time. The stdlib html.parser of Python 3.11.7 is quadratic on
crafted input (100 KB of "<a" takes seconds; see CVE-2025-6069), which an upload endpoint
cannot afford. Scripts, styles, <head> and other non-visible elements are dropped; block
elements become line or paragraph breaks, list items "- ", table cells " | ".
"""

from __future__ import annotations

import re

import lxml.etree
import lxml.html

_SKIP = {
    "head", "script", "style", "noscript", "template", "svg", "math", "iframe", "object", "embed", "canvas",
}  # fmt: skip
_LINE = {"br", "div", "li", "tr", "dt", "dd", "figcaption", "caption", "summary", "option", "label"}
_PARAGRAPH = {
    "p", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "blockquote", "ul", "ol", "dl", "table",
    "section", "article", "header", "footer", "nav", "aside", "main", "form", "fieldset",
    "figure", "details", "address", "hr",
}  # fmt: skip
_META = {
    "description": "description",
    "og:description": "description",
    "author": "author",
    "keywords": "keywords",
    "og:title": "title",
}


def meta_charset(data: bytes) -> str | None:
    """The charset a page declares in its first bytes (<meta charset=...> or http-equiv)."""
    m = re.search(rb"<meta[^>]{0,200}?charset\s*=\s*[\"']?([A-Za-z0-9_.:-]{1,40})", data[:4096], re.I)
    return m.group(1).decode("ascii") if m else None


def html_to_text(html: str) -> tuple[str, dict[str, str]]:
    """(visible text, metadata); the text is "" when the page has none."""
    # The caller decoded the page; lxml gets UTF-8 bytes so a stray XML declaration cannot make
    # it decode again. Comments and processing instructions are dropped while parsing.
    # huge_tree lifts libxml2's nesting limit from 256 to 2048 (deeper content is dropped);
    # HTML has no entity definitions, so there is no expansion bomb to guard against.
    parser = lxml.html.HTMLParser(encoding="utf-8", remove_comments=True, remove_pis=True, huge_tree=True)
    try:
        root = lxml.html.document_fromstring(html.encode("utf-8", "surrogatepass"), parser=parser)
    except (lxml.etree.ParserError, ValueError):  # "Document is empty"
        return "", {}

    metadata: dict[str, str] = {}
    title = root.find(".//title")
    if title is not None and title.text_content().strip():
        metadata["title"] = " ".join(title.text_content().split())
    for meta in root.iter("meta"):
        key = _META.get((meta.get("name") or meta.get("property") or "").lower())
        content = " ".join((meta.get("content") or "").split())
        if key and content and key not in metadata:
            metadata[key] = content
    if root.get("lang"):
        metadata["language"] = root.get("lang", "")

    # Text and breaks are collected apart: consecutive breaks merge into the largest one
    # (</p> then <div> is one paragraph break, not three newlines).
    pieces: list[str | int] = []
    skip = pre = 0

    def emit(s: str | None) -> None:
        if s and not skip:
            pieces.append(s if pre else re.sub(r"\s+", " ", s))

    def brk(tag: str) -> None:
        n = 2 if tag in _PARAGRAPH else 1 if tag in _LINE else 0
        if n and not skip:
            pieces.append(n)

    # iterwalk is iterative, so deep nesting cannot exhaust the Python stack.
    for event, el in lxml.etree.iterwalk(root, events=("start", "end")):
        tag = el.tag.lower() if isinstance(el.tag, str) else ""
        if event == "start":
            skip += tag in _SKIP
            pre += tag == "pre"
            brk(tag)
            if tag in ("td", "th") and el.getprevious() is not None:
                emit(" | ")
            emit("- " if tag == "li" else None)
            emit(el.text)
        else:
            if tag != "br":
                brk(tag)
            skip -= tag in _SKIP
            pre -= tag == "pre"
            emit(el.tail)  # the tail follows the element, outside it

    out: list[str] = []
    pending = 0
    for piece in pieces:
        if isinstance(piece, int):
            pending = max(pending, piece) if out else 0  # no breaks before the first text
        elif not (pending and piece.isspace()):  # whitespace between blocks is dropped
            out.append("\n" * pending + piece)
            pending = 0
    # Lines are trimmed and runs of spaces merged (this also flattens <pre> indentation,
    # which retrieval does not need).
    lines = (re.sub(r"[ \t\f\v]+", " ", line).strip() for line in "".join(out).split("\n"))
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip(), metadata

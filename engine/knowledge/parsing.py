"""A document's text from its bytes, by the file's suffix: text, Markdown, HTML, CSV, JSON, PDF.
Pure functions, CPU-bound: the indexer calls them in a thread."""

from __future__ import annotations

import csv
import io
import json
from html.parser import HTMLParser
from pathlib import PurePosixPath
from typing import Any

from engine.errors import NodeloomError

__all__ = ["FORMATS", "DocumentUnreadable", "document_text"]

# Suffix → format; anything else is read as plain text when it decodes as UTF-8.
FORMATS = {
    ".md": "markdown",
    ".markdown": "markdown",
    ".txt": "text",
    ".html": "html",
    ".htm": "html",
    ".csv": "csv",
    ".json": "json",
    ".pdf": "pdf",
}
_SKIPPED_TAGS = frozenset({"script", "style", "head", "noscript", "template"})
_BLOCK_TAGS = frozenset(
    {"p", "div", "br", "li", "tr", "section", "article", "table", "ul", "ol", "pre", "hr"}
)
_HEADINGS = {f"h{level}": level for level in range(1, 7)}


class DocumentUnreadable(NodeloomError, ValueError):
    """A file whose text cannot be had (not UTF-8, a broken or encrypted PDF, bad JSON…)."""


def document_text(name: str, data: bytes) -> str:
    """The text of the file ``name`` holding ``data``; Markdown headings are kept as ``#`` lines
    (HTML's become them), so the chunker can keep a section together."""
    kind = FORMATS.get(PurePosixPath(name).suffix.lower(), "text")
    if kind == "pdf":
        return _pdf_text(name, data)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DocumentUnreadable(f"{name} is not UTF-8 text") from None
    if kind == "html":
        return _html_text(text)
    if kind == "csv":
        return _csv_text(name, text)
    if kind == "json":
        return _json_text(name, text)
    return text


def _pdf_text(name: str, data: bytes) -> str:
    from pypdf import PdfReader  # noqa: PLC0415 - only for PDFs
    from pypdf.errors import PyPdfError  # noqa: PLC0415

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise DocumentUnreadable(f"{name} is an encrypted PDF")
        pages = [page.extract_text() or "" for page in reader.pages]
    except (PyPdfError, ValueError, KeyError, TypeError, OSError) as exc:
        if isinstance(exc, DocumentUnreadable):
            raise
        raise DocumentUnreadable(f"{name} is not a readable PDF: {exc}") from None
    return "\n\n".join(page.strip() for page in pages if page.strip())


class _HtmlText(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED_TAGS:
            self._skipping += 1
        elif tag in _HEADINGS:
            self.parts.append("\n\n" + "#" * _HEADINGS[tag] + " ")
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED_TAGS:
            self._skipping = max(0, self._skipping - 1)
        elif tag in _HEADINGS or tag in _BLOCK_TAGS:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(" ".join(data.split()) if data.strip() else " ")


def _html_text(text: str) -> str:
    parser = _HtmlText()
    parser.feed(text)
    parser.close()
    blocks = ("".join(parser.parts)).split("\n\n")
    return "\n\n".join(block.strip() for block in blocks if block.strip())


def _csv_text(name: str, text: str) -> str:
    """One paragraph per row: ``column: value`` for each column."""
    try:
        rows = list(csv.DictReader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        raise DocumentUnreadable(f"{name} is not valid CSV: {exc}") from None
    paragraphs = []
    for row in rows:
        fields = [f"{key}: {value}" for key, value in row.items() if key and value]
        if fields:
            paragraphs.append("\n".join(fields))
    return "\n\n".join(paragraphs)


def _json_text(name: str, text: str) -> str:
    """Each scalar on a line of its own, after the path of keys leading to it."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DocumentUnreadable(f"{name} is not valid JSON: {exc}") from None
    lines: list[str] = []
    _json_lines(value, "", lines)
    return "\n".join(lines)


def _json_lines(value: Any, path: str, lines: list[str]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _json_lines(item, f"{path}.{key}" if path else str(key), lines)
        if path and not value:
            lines.append(f"{path}: {{}}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            if not path and index:
                lines.append("")  # the items of a top-level list: paragraphs of their own
            _json_lines(item, f"{path}[{index}]", lines)
        if not value and path:
            lines.append(f"{path}: []")
    else:
        shown = value if isinstance(value, str) else json.dumps(value)
        lines.append(f"{path}: {shown}" if path else str(shown))

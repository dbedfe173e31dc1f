"""Text cut into chunks of about ``size`` characters that overlap by up to ``overlap``,
paragraph by paragraph: a paragraph is split only when it alone is longer than a chunk, a
Markdown heading stays with the paragraph after it, and a chunk that starts inside a section
begins with the section's heading line."""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["chunk_text"]

_HEADING = re.compile(r"^#{1,6}\s+\S")
_BLANK = re.compile(r"\n[ \t]*\n")


@dataclass(frozen=True, slots=True)
class _Piece:
    text: str
    heading: str | None  # the heading line of the section it belongs to
    opens_section: bool  # it starts with that heading


def chunk_text(text: str, size: int = 800, overlap: int = 100) -> list[str]:
    """The chunks of ``text`` (none for blank text)."""
    overlap = max(0, min(overlap, size // 2))
    chunks: list[str] = []
    current: list[_Piece] = []
    length = 0
    for piece in _pieces(text, size, overlap):
        if current and length + 2 + len(piece.text) > size:
            chunks.append(_joined(current))
            carried = [] if piece.opens_section else _tail(current, overlap, piece.heading)
            current, length = carried, sum(len(p.text) + 2 for p in carried)
        current.append(piece)
        length += len(piece.text) + 2
    if current:
        chunks.append(_joined(current))
    return chunks


def _joined(pieces: list[_Piece]) -> str:
    body = "\n\n".join(piece.text for piece in pieces)
    first = pieces[0]
    if first.heading is not None and not first.opens_section:
        return f"{first.heading}\n{body}"
    return body


def _tail(pieces: list[_Piece], overlap: int, heading: str | None) -> list[_Piece]:
    """The last whole paragraphs of a chunk, within ``overlap`` characters, of the section the
    next piece belongs to."""
    tail: list[_Piece] = []
    total = 0
    for piece in reversed(pieces):
        if piece.heading != heading or total + len(piece.text) > overlap:
            break
        tail.insert(0, piece)
        total += len(piece.text) + 2
    return tail


def _pieces(text: str, size: int, overlap: int) -> list[_Piece]:
    pieces: list[_Piece] = []
    heading: str | None = None
    for paragraph in _paragraphs(text):
        first_line = paragraph.split("\n", 1)[0]
        opens = bool(_HEADING.match(first_line))
        if opens:
            heading = first_line.strip()
        if len(paragraph) <= size:
            pieces.append(_Piece(paragraph, heading, opens))
            continue
        for index, window in enumerate(_windows(paragraph, size, overlap)):
            pieces.append(_Piece(window, heading, opens and index == 0))
    return pieces


def _paragraphs(text: str) -> list[str]:
    """Blank-line separated paragraphs; a heading line starts one, and a heading alone is
    joined to the paragraph after it."""
    lines: list[str] = []
    for block in _BLANK.split(text.replace("\r\n", "\n").replace("\r", "\n")):
        current: list[str] = []
        for line in block.split("\n"):
            if _HEADING.match(line) and current:
                lines.append("\n".join(current))
                current = []
            current.append(line.rstrip())
        lines.append("\n".join(current))
    paragraphs: list[str] = []
    pending: str | None = None  # a heading waiting for its paragraph
    for line in lines:
        paragraph = line.strip()
        if not paragraph:
            continue
        if pending is not None:
            paragraph = f"{pending}\n{paragraph}"
            pending = None
        if _HEADING.match(paragraph) and "\n" not in paragraph:
            pending = paragraph
            continue
        paragraphs.append(paragraph)
    if pending is not None:
        paragraphs.append(pending)
    return paragraphs


def _windows(paragraph: str, size: int, overlap: int) -> list[str]:
    """A long paragraph in windows of whole words, each starting ``overlap`` characters before
    the previous one ended."""
    words = paragraph.split(" ")
    windows: list[str] = []
    start = 0
    while start < len(words):
        end, length = start, 0
        while end < len(words) and (end == start or length + 1 + len(words[end]) <= size):
            length += len(words[end]) + (1 if end > start else 0)
            end += 1
        windows.append(" ".join(words[start:end]))
        if end >= len(words):
            break
        back, carried = end, 0
        while back - 1 > start and carried + len(words[back - 1]) + 1 <= overlap:
            back -= 1
            carried += len(words[back]) + 1
        start = back
    return windows

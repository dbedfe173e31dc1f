"""Exports as documents rather than tables: plain text, XML (xml.etree) and PDF (fpdf2). Each
row of the table is a block of ``column: value`` lines, so a wide batch reads as well as a run."""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import msgspec
from fpdf import FPDF
from fpdf.enums import XPos, YPos

from server.export_cells import Table, text

FONT_ENV = "NODELOOM_PDF_FONT"
# A Unicode TrueType font for PDFs (Debian's fonts-dejavu-core); without one, Helvetica, whose
# Latin-1 misses some characters.
FONT_PATHS = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/local/share/fonts/DejaVuSans.ttf",
    "/Library/Fonts/DejaVuSans.ttf",
)
# What XML 1.0 cannot carry at all, even escaped.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def to_text(table: Table) -> bytes:
    """The title underlined, then a blank-line-separated block per row; a value's further lines
    are indented by two spaces."""
    lines = [table.title, "=" * len(table.title)]
    for row in table.rows:
        lines.append("")
        for column, value in zip(table.columns, row, strict=True):
            first, *more = text(value).split("\n")
            lines.append(f"{column}: {first}".rstrip())
            lines += [f"  {line}" for line in more]
    return ("\n".join(lines) + "\n").encode()


def to_xml(table: Table) -> bytes:
    """``<table title=…><row><cell name="…">…</cell>…</row>…</table>``. A cell that was not text
    says ``type="json"``; an absent one ``null="true"``; text XML cannot hold (control
    characters) is given as a JSON string literal with ``encoding="json"``."""
    root = ET.Element("table", title=_xml_safe(table.title))
    columns = ET.SubElement(root, "columns")
    for name in table.columns:
        ET.SubElement(columns, "column").text = _xml_safe(name)
    for row in table.rows:
        element = ET.SubElement(root, "row")
        for name, value in zip(table.columns, row, strict=True):
            cell = ET.SubElement(element, "cell", name=_xml_safe(name))
            if value is None:
                cell.set("null", "true")
                continue
            if not isinstance(value, str):
                cell.set("type", "json")
            content = text(value)
            if _NOT_XML.search(content):
                cell.set("encoding", "json")
                content = msgspec.json.encode(content).decode()
            cell.text = content
    ET.indent(root)
    return bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True)) + b"\n"


def _xml_safe(name: str) -> str:
    return _NOT_XML.sub("\ufffd", name)


def font_path() -> Path | None:
    chosen = os.environ.get(FONT_ENV, "").strip()
    for candidate in (chosen, *FONT_PATHS) if chosen else FONT_PATHS:
        if Path(candidate).is_file():
            return Path(candidate)
    return None


def to_pdf(table: Table) -> bytes:
    pdf = FPDF(format="A4")
    pdf.set_title(table.title)
    pdf.set_creator("nodeloom")
    font = font_path()
    family = "Helvetica"
    if font is not None:
        family = "Body"
        pdf.add_font(family, "", str(font))
        bold = font.with_name(font.stem + "-Bold" + font.suffix)
        pdf.add_font(family, "B", str(bold if bold.is_file() else font))

    def fit(value: str) -> str:
        return value if font else value.encode("latin-1", "replace").decode("latin-1")

    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.add_page()
    pdf.set_font(family, "B", 14)
    pdf.multi_cell(0, 7, fit(table.title), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    for row in table.rows:
        pdf.ln(3)
        for column, value in zip(table.columns, row, strict=True):
            pdf.set_font(family, "B", 9)
            pdf.multi_cell(0, 5, fit(column), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
            pdf.set_font(family, "", 10)
            pdf.multi_cell(
                0, 5, fit(text(value)) or " ", new_x=XPos.LMARGIN, new_y=YPos.NEXT, align="L"
            )
    return bytes(pdf.output())

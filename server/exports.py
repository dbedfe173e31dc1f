"""Run and batch outputs as tables: CSV, Markdown, HTML and XLSX (openpyxl); as documents: plain
text, XML and PDF (server/export_documents.py); or as JSON, the full records."""

from __future__ import annotations

import csv
import html
import io
from typing import Any, Literal

import msgspec
from openpyxl import Workbook

from engine.records import RunRecord
from engine.storage.batches import BatchRun
from server.export_cells import Table, text
from server.export_documents import to_pdf, to_text, to_xml

Format = Literal["json", "csv", "md", "html", "xlsx", "txt", "xml", "pdf"]
MEDIA_TYPES: dict[str, str] = {
    "json": "application/json",
    "csv": "text/csv; charset=utf-8",
    "md": "text/markdown; charset=utf-8",
    "html": "text/html; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "txt": "text/plain; charset=utf-8",
    "xml": "application/xml",
    "pdf": "application/pdf",
}
FORMATS = tuple(MEDIA_TYPES)
_encoder = msgspec.json.Encoder(order="sorted")


def run_table(record: RunRecord) -> Table:
    """A run: one row per input and per output."""
    rows: list[list[Any]] = [["input", name, value] for name, value in record.inputs.items()]
    rows += [["output", name, value] for name, value in record.outputs.items()]
    title = f"Run {record.id} of {record.workflow_name} ({record.status})"
    return Table(title, ["kind", "name", "value"], rows)


def batch_table(batch_id: str, runs: list[BatchRun]) -> Table:
    """A batch: one row per item, a column per input and per output."""
    inputs = _names(run.inputs for run in runs)
    outputs = _names(run.outputs for run in runs)
    columns = ["index", "run_id", "status", *inputs, *outputs, "error"]
    rows = [
        [
            run.index,
            run.run_id,
            run.status,
            *(run.inputs.get(name) for name in inputs),
            *(run.outputs.get(name) for name in outputs),
            run.error,
        ]
        for run in runs
    ]
    headers = columns[:3] + [f"input:{n}" for n in inputs] + [f"output:{n}" for n in outputs]
    return Table(f"Batch {batch_id}", [*headers, "error"], rows)


def evaluation_table(evaluation_id: str, report: dict[str, Any]) -> Table:
    """An evaluation: one row per dataset row and variant, its outputs and scores."""
    outputs = _names(
        result["outputs"] for row in report["rows"] for result in row["variants"].values()
    )
    rows = [
        [
            row["index"],
            name,
            result["run_id"],
            result["status"],
            result["passed"],
            result["score"],
            *(result["outputs"].get(output) for output in outputs),
        ]
        for row in report["rows"]
        for name, result in row["variants"].items()
    ]
    headers = ["row", "variant", "run_id", "status", "passed", "score"]
    return Table(
        f"Evaluation {evaluation_id}", [*headers, *(f"output:{n}" for n in outputs)], rows
    )


def _names(mappings: Any) -> list[str]:
    seen: dict[str, None] = {}
    for mapping in mappings:
        seen.update(dict.fromkeys(mapping))
    return list(seen)


def render(table: Table, fmt: Format, document: Any) -> bytes:
    """The table in ``fmt``; ``json`` gives ``document`` (the full records) instead."""
    if fmt == "json":
        return msgspec.json.format(_encoder.encode(document), indent=2) + b"\n"
    if fmt == "csv":
        return to_csv(table)
    if fmt == "md":
        return to_markdown(table)
    if fmt == "html":
        return to_html(table)
    if fmt == "txt":
        return to_text(table)
    if fmt == "xml":
        return to_xml(table)
    if fmt == "pdf":
        return to_pdf(table)
    return to_xlsx(table)


def to_csv(table: Table) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(table.columns)
    writer.writerows([text(cell) for cell in row] for row in table.rows)
    return buffer.getvalue().encode()


def _md_cell(value: Any) -> str:
    return text(value).replace("\\", "\\\\").replace("|", "\\|").replace("\n", "<br>")


def to_markdown(table: Table) -> bytes:
    lines = [
        f"# {table.title}",
        "",
        "| " + " | ".join(_md_cell(c) for c in table.columns) + " |",
        "|" + "---|" * len(table.columns),
    ]
    lines += ["| " + " | ".join(_md_cell(cell) for cell in row) + " |" for row in table.rows]
    return ("\n".join(lines) + "\n").encode()


def to_html(table: Table) -> bytes:
    def cells(tag: str, row: list[Any]) -> str:
        return "".join(f"<{tag}>{html.escape(text(cell))}</{tag}>" for cell in row)

    body = "\n".join(f"<tr>{cells('td', row)}</tr>" for row in table.rows)
    title = html.escape(table.title)
    page = (
        '<!DOCTYPE html>\n<html lang="en">\n<head><meta charset="utf-8">'
        f"<title>{title}</title></head>\n<body>\n<h1>{title}</h1>\n<table>\n"
        f"<thead><tr>{cells('th', table.columns)}</tr></thead>\n<tbody>\n{body}\n</tbody>\n"
        "</table>\n</body>\n</html>\n"
    )
    return page.encode()


def _xlsx_cell(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value
    return text(value)


def to_xlsx(table: Table) -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "outputs"
    sheet.append(table.columns)
    for row in table.rows:
        sheet.append([_xlsx_cell(cell) for cell in row])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()

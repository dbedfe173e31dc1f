"""A run's and a batch's export in every format, each read back by a parser of that format
(csv, openpyxl, xml.etree, pypdf's text extraction)."""

from __future__ import annotations

import csv
import io
import json
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from openpyxl import load_workbook
from pypdf import PdfReader

from tests.support.api import saved

Client = AsyncTestClient[Litestar]


@pytest.fixture
async def run_id(lite: Client) -> str:
    workflow_id = await saved(lite)
    response = await lite.post(
        f"/api/workflows/{workflow_id}/runs",
        json={"inputs": {"name": "<b>Ada</b> | Lovelace"}, "wait": True},
    )
    return str(response.json()["id"])


async def export(lite: Client, run_id: str, fmt: str) -> bytes:
    response = await lite.get(f"/api/runs/{run_id}/export", params={"format": fmt})
    assert response.status_code == 200, response.text
    assert f'filename="{run_id}.{fmt}"' in response.headers["content-disposition"]
    return response.content


async def test_every_format(lite: Client, run_id: str) -> None:
    record = json.loads(await export(lite, run_id, "json"))
    assert record["id"] == run_id
    assert record["outputs"]["greeting"].startswith("Hello, <b>")

    rows = list(csv.reader(io.StringIO((await export(lite, run_id, "csv")).decode())))
    assert rows == [
        ["kind", "name", "value"],
        ["input", "name", "<b>Ada</b> | Lovelace"],
        ["output", "greeting", "Hello, <b>Ada</b> | Lovelace!"],
    ]

    markdown = (await export(lite, run_id, "md")).decode()
    assert "| output | greeting | Hello, <b>Ada</b> \\| Lovelace! |" in markdown

    page = (await export(lite, run_id, "html")).decode()
    assert "<td>Hello, &lt;b&gt;Ada&lt;/b&gt; | Lovelace!</td>" in page
    assert "<b>" not in page

    book = load_workbook(io.BytesIO(await export(lite, run_id, "xlsx")))
    sheet = book.active
    assert sheet is not None
    assert [[cell.value for cell in row] for row in sheet.iter_rows()][2] == [
        "output",
        "greeting",
        "Hello, <b>Ada</b> | Lovelace!",
    ]


def xml_rows(content: bytes) -> list[dict[str, str | None]]:
    root = ET.fromstring(content)
    return [
        {cell.attrib["name"]: cell.text for cell in row.findall("cell")}
        for row in root.findall("row")
    ]


def pdf_text(content: bytes) -> str:
    assert content.startswith(b"%PDF-")
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(content)).pages)


async def test_text_xml_and_pdf(lite: Client, run_id: str) -> None:
    plain = (await export(lite, run_id, "txt")).decode()
    title, underline, blank, *rest = plain.splitlines()
    assert title.startswith(f"Run {run_id} of Greeting (succeeded)")
    assert underline == "=" * len(title)
    assert blank == ""
    assert rest == [
        *["kind: input", "name: name", "value: <b>Ada</b> | Lovelace", ""],
        *["kind: output", "name: greeting", "value: Hello, <b>Ada</b> | Lovelace!"],
    ]

    root = ET.fromstring(await export(lite, run_id, "xml"))
    assert root.tag == "table"
    assert root.attrib["title"] == title
    assert [column.text for column in root.iter("column")] == ["kind", "name", "value"]
    assert xml_rows(await export(lite, run_id, "xml")) == [
        {"kind": "input", "name": "name", "value": "<b>Ada</b> | Lovelace"},
        {"kind": "output", "name": "greeting", "value": "Hello, <b>Ada</b> | Lovelace!"},
    ]

    words = pdf_text(await export(lite, run_id, "pdf"))
    assert f"Run {run_id} of Greeting" in words
    assert "Hello, <b>Ada</b> | Lovelace!" in words


async def test_a_batch_as_text_xml_and_pdf(lite: Client) -> None:
    workflow_id = await saved(lite)
    names = ["Ada", "Grace Hopper — 😀", "line one\nline two\x01"]
    batch = await lite.post(
        f"/api/workflows/{workflow_id}/runs/batch",
        json={"inputs": [{"name": name} for name in names], "wait": True},
    )
    assert batch.status_code in (200, 201), batch.text
    batch_id = batch.json()["id"]

    def exported(fmt: str) -> Any:
        return lite.get(f"/api/batches/{batch_id}/export", params={"format": fmt})

    plain = (await exported("txt")).text
    assert "input:name: Grace Hopper — 😀" in plain
    assert "input:name: line one\n  line two\x01" in plain  # further lines indented

    response = await exported("xml")
    assert response.headers["content-type"].startswith("application/xml")
    rows = xml_rows(response.content)
    assert [row["index"] for row in rows] == ["0", "1", "2"]
    assert rows[1]["output:greeting"] == "Hello, Grace Hopper — 😀!"
    assert rows[0]["error"] is None
    cells = ET.fromstring(response.content).findall("row")[2].findall("cell")
    odd = next(cell for cell in cells if cell.attrib["name"] == "input:name")
    assert odd.attrib["encoding"] == "json"  # XML 1.0 cannot hold \x01 even escaped
    assert json.loads(odd.text or "") == names[2]
    index = next(cell for cell in cells if cell.attrib["name"] == "index")
    assert index.attrib["type"] == "json"

    response = await exported("pdf")
    assert response.headers["content-type"] == "application/pdf"
    words = pdf_text(response.content)
    assert f"Batch {batch_id}" in words
    assert "Hello, Ada!" in words
    assert "Grace Hopper —" in words


async def test_unknown_format(lite: Client, run_id: str) -> None:
    response = await lite.get(f"/api/runs/{run_id}/export", params={"format": "docx"})
    assert response.status_code == 400
    assert (await lite.get("/api/runs/run_nope/export")).status_code == 404

"""A run's export in every format."""

from __future__ import annotations

import csv
import io
import json

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from openpyxl import load_workbook

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


async def test_unknown_format(lite: Client, run_id: str) -> None:
    response = await lite.get(f"/api/runs/{run_id}/export", params={"format": "pdf"})
    assert response.status_code == 400
    assert (await lite.get("/api/runs/run_nope/export")).status_code == 404

"""Batch runs: a list of input sets or one set and a count (with `index`), progress read and
streamed, a batch export; on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.support.api import GREETING, parse, saved

Client = AsyncTestClient[Litestar]

NUMBERED: dict[str, Any] = {
    "schema_version": 1,
    "name": "Numbered",
    "nodes": [
        {"id": "topic", "type": "input", "params": {"name": "topic", "schema": {"type": "string"}}},
        {
            "id": "index",
            "type": "input",
            "params": {"name": "index", "schema": {"type": "integer"}},
        },
        {"id": "line", "type": "template", "params": {"template": "{{ index }}: {{ topic }}"}},
        {"id": "out", "type": "output", "params": {"name": "line"}},
    ],
    "edges": [
        {"from": "topic.value", "to": "line.topic"},
        {"from": "index.value", "to": "line.index"},
        {"from": "line.text", "to": "out.value"},
    ],
}


async def test_list_of_input_sets(client: Client) -> None:
    workflow_id = await saved(client)
    names = ["Ada", "Grace", "Edsger"]
    response = await client.post(
        f"/api/workflows/{workflow_id}/runs/batch",
        json={"inputs": [{"name": name} for name in names], "wait": True},
    )
    assert response.status_code == 201, response.text
    batch = response.json()
    assert batch["progress"] == {
        "batch_id": batch["id"],
        "status": "finished",
        "total": 3,
        "done": 3,
        "failed": 0,
        "running": 0,
        "pending": 0,
    }
    assert [run["outputs"]["greeting"] for run in batch["runs"]] == [
        f"Hello, {name}!" for name in names
    ]
    runs = (await client.get("/api/runs", params={"workflow_id": workflow_id})).json()["items"]
    assert len(runs) == 3
    again = (await client.get(f"/api/batches/{batch['id']}")).json()
    assert again["progress"]["done"] == 3

    exported = await client.get(f"/api/batches/{batch['id']}/export", params={"format": "csv"})
    rows = list(csv.reader(io.StringIO(exported.text)))
    assert rows[0] == ["index", "run_id", "status", "input:name", "output:greeting", "error"]
    assert [row[4] for row in rows[1:]] == [f"Hello, {name}!" for name in names]


async def test_count_with_index(client: Client) -> None:
    workflow_id = await saved(client, NUMBERED)
    response = await client.post(
        f"/api/workflows/{workflow_id}/runs/batch",
        json={"inputs": {"topic": "bees"}, "count": 4, "wait": True},
    )
    assert response.status_code == 201, response.text
    lines = [run["outputs"]["line"] for run in response.json()["runs"]]
    assert lines == ["0: bees", "1: bees", "2: bees", "3: bees"]


async def test_invalid_sets_start_nothing(client: Client) -> None:
    workflow_id = await saved(client)
    response = await client.post(
        f"/api/workflows/{workflow_id}/runs/batch",
        json={"inputs": [{"name": "ok"}, {"name": 3}, {"who": "x"}]},
    )
    assert response.status_code == 422
    assert [error["path"] for error in response.json()["errors"]] == ["/inputs/1", "/inputs/2"]
    assert (await client.get("/api/runs")).json()["items"] == []
    no_count = await client.post(
        f"/api/workflows/{workflow_id}/runs/batch", json={"inputs": {"name": "x"}}
    )
    assert no_count.status_code == 422
    assert no_count.json()["errors"][0]["code"] == "invalid_batch"
    assert (await client.get("/api/batches/batch_nope")).status_code == 404


async def test_progress_is_streamed(client: Client) -> None:
    workflow_id = await saved(client, GREETING)
    started = await client.post(
        f"/api/workflows/{workflow_id}/runs/batch", json={"inputs": {}, "count": 5}
    )
    assert started.status_code == 202
    batch_id = started.json()["id"]
    async with client.stream("GET", f"/api/batches/{batch_id}/events") as response:
        frames = parse((await response.aread()).decode())
    assert all(frame["event"] == "batch.progress" for frame in frames)
    last = frames[-1]["data"]
    assert last["status"] == "finished"
    assert last["done"] == 5
    assert last["total"] == 5
    done = [frame["data"]["done"] for frame in frames]
    assert done == sorted(done)


async def test_a_batch_of_a_workflow_running_a_saved_one(client: Client) -> None:
    callee = await saved(client)
    caller = {
        "schema_version": 1,
        "name": "Greets through another",
        "nodes": [
            {"id": "name", "type": "input", "params": {"name": "name"}},
            {"id": "s", "type": "subgraph", "params": {"workflow": callee}},
            {"id": "out", "type": "output", "params": {"name": "greeting"}},
        ],
        "edges": [
            {"from": "name.value", "to": "s.name"},
            {"from": "s.greeting", "to": "out.value"},
        ],
    }
    workflow_id = (await client.post("/api/workflows", json=caller)).json()["id"]
    response = await client.post(
        f"/api/workflows/{workflow_id}/runs/batch",
        json={"inputs": [{"name": "Ada"}, {"name": "Alan"}], "wait": True},
    )
    assert response.status_code == 201, response.text
    outputs = [run["outputs"]["greeting"] for run in response.json()["runs"]]
    assert outputs == ["Hello, Ada!", "Hello, Alan!"]

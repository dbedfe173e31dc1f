"""Datasets and evaluations through the API (SPEC §17), on SQLite and PostgreSQL: two variants
over a dataset, scored; the second variant reruns the first's runs, reusing what it does not
change; everything checked before any run starts."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient

from engine.storage.database import Database
from engine.storage.evaluations import EvaluationStore
from server.app import create_app
from tests.support.api import make_config
from tests.support.nodes import api_test_registry
from tests.support.serve import Served

DOUBLING: dict[str, Any] = {
    "schema_version": 1,
    "name": "Doubling",
    "nodes": [
        {"id": "n", "type": "input", "params": {"name": "n", "schema": {"type": "integer"}}},
        {"id": "note", "type": "input", "params": {"name": "note", "default": "x"}},
        {"id": "label", "type": "template", "params": {"template": "note {{ note }}"}},
        {"id": "times", "type": "template", "params": {"template": "{{ n * 2 }}"}},
        {"id": "doubled", "type": "output", "params": {"name": "doubled"}},
        {"id": "labelled", "type": "output", "params": {"name": "label"}},
    ],
    "edges": [
        {"from": "n.value", "to": "times.n"},
        {"from": "times.text", "to": "doubled.value"},
        {"from": "note.value", "to": "label.note"},
        {"from": "label.text", "to": "labelled.value"},
    ],
}
ROWS = [{"inputs": {"n": n}, "expected": {"doubled": str(n * 2)}} for n in (1, 2, 3, 4)]


async def finished(client: AsyncTestClient[Litestar], evaluation_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        found = (await client.get(f"/api/evaluations/{evaluation_id}")).json()
        if found["status"] != "running":
            return dict(found)
        assert time.monotonic() < deadline, found
        await asyncio.sleep(0.05)


async def test_two_variants_over_a_dataset(client: AsyncTestClient[Litestar]) -> None:
    workflow_id = (await client.post("/api/workflows", json=DOUBLING)).json()["id"]
    dataset = await client.post("/api/datasets", json={"name": "small", "rows": ROWS})
    assert dataset.status_code == 201, dataset.text
    started = await client.post(
        "/api/evaluations",
        json={
            "workflow_id": workflow_id,
            "dataset_id": dataset.json()["id"],
            "variants": [
                {"name": "as is"},
                {"name": "triple", "params": {"times": {"template": "{{ n * 3 }}"}}},
            ],
            "evaluators": [
                {"output": "doubled", "kind": "equals"},
                {"output": "doubled", "kind": "regex", "pattern": "^[0-9]+$"},
            ],
        },
    )
    assert started.status_code == 202, started.text
    evaluation = await finished(client, started.json()["id"])
    assert evaluation["status"] == "done"
    report = evaluation["report"]
    assert report["progress"] == {"done": 4, "total": 4}
    as_is, triple = report["variants"]["as is"], report["variants"]["triple"]
    assert (as_is["pass_rate"], as_is["mean_score"]) == (1.0, 1.0)
    assert (triple["pass_rate"], triple["mean_score"]) == (0.0, 0.5)  # numbers, not doubled
    assert as_is["reused_nodes"] == 0
    assert triple["reused_nodes"] == 4 * 4  # n, note, label and labelled taken over
    assert triple["executed_nodes"] == 4 * 2  # times and doubled
    [first] = [row for row in report["rows"] if row["index"] == 0]
    assert first["variants"]["triple"]["outputs"]["doubled"] == "3"
    run = (await client.get(f"/api/runs/{first['variants']['triple']['run_id']}")).json()
    assert run["parent_run_id"] == first["variants"]["as is"]["run_id"]
    assert run["trigger"] == f"evaluation:{evaluation['id']}"

    listed = (await client.get("/api/evaluations", params={"workflow_id": workflow_id})).json()
    assert [item["id"] for item in listed["items"]] == [evaluation["id"]]
    exported = await client.get(f"/api/evaluations/{evaluation['id']}/export?format=csv")
    assert exported.status_code == 200
    lines = exported.text.splitlines()
    assert lines[0] == "row,variant,run_id,status,passed,score,output:doubled,output:label"
    assert len(lines) == 1 + 4 * 2


async def test_bad_evaluations_start_nothing(client: AsyncTestClient[Litestar]) -> None:
    workflow_id = (await client.post("/api/workflows", json=DOUBLING)).json()["id"]
    missing = [{"inputs": {"n": 1}}, {"inputs": {"note": "no n"}}]
    dataset_id = (await client.post("/api/datasets", json={"rows": missing})).json()["id"]
    good = (await client.post("/api/datasets", json={"rows": ROWS})).json()["id"]
    runs_before = len((await client.get("/api/runs")).json()["items"])

    def asked(**changes: Any) -> dict[str, Any]:
        return {
            "workflow_id": workflow_id,
            "dataset_id": good,
            "variants": [{"name": "a"}],
            "evaluators": [{"output": "doubled", "kind": "equals"}],
            **changes,
        }

    row = await client.post("/api/evaluations", json=asked(dataset_id=dataset_id))
    assert row.status_code == 422
    assert "rows/1" in row.text
    assert "'n' is required" in row.text
    output = await client.post(
        "/api/evaluations", json=asked(evaluators=[{"output": "tripled", "kind": "equals"}])
    )
    assert output.status_code == 422
    assert "no output 'tripled'" in output.text
    kind = await client.post(
        "/api/evaluations", json=asked(evaluators=[{"output": "doubled", "kind": "vibes"}])
    )
    assert kind.status_code == 400
    param = await client.post(
        "/api/evaluations",
        json=asked(variants=[{"name": "a", "params": {"nothing": {"template": "x"}}}]),
    )
    assert param.status_code == 422
    same = await client.post("/api/evaluations", json=asked(variants=[{"name": "a"}] * 2))
    assert same.status_code == 422
    assert (await client.post("/api/evaluations", json=asked(dataset_id="ds_x"))).status_code == 404
    assert len((await client.get("/api/runs")).json()["items"]) == runs_before


async def test_datasets_from_workspace_files(client: AsyncTestClient[Litestar]) -> None:
    csv = b"n,expected.doubled\n1,2\n5,10\n"
    assert (await client.put("/api/files/rows.csv", content=csv)).status_code in (200, 201)
    made = await client.post("/api/datasets", json={"path": "rows.csv"})
    assert made.status_code == 201, made.text
    assert made.json()["name"] == "rows"
    assert made.json()["rows"] == [
        {"inputs": {"n": "1"}, "expected": {"doubled": 2}},
        {"inputs": {"n": "5"}, "expected": {"doubled": 10}},
    ]
    lines = b'{"inputs": {"n": 1}}\n{"inputs": \n'
    await client.put("/api/files/rows.jsonl", content=lines)
    broken = await client.post("/api/datasets", json={"path": "rows.jsonl"})
    assert broken.status_code == 422
    assert "rows.jsonl line 2" in broken.text
    outside = await client.post("/api/datasets", json={"path": "../secrets.csv"})
    assert outside.status_code == 400
    both = await client.post("/api/datasets", json={"path": "rows.csv", "rows": ROWS})
    assert both.status_code == 422


SLOW: dict[str, Any] = {
    "schema_version": 1,
    "name": "Slow",
    "nodes": [
        {"id": "n", "type": "input", "params": {"name": "n"}},
        {"id": "wait", "type": "sleep", "params": {"seconds": 0.3}},
        {"id": "out", "type": "output", "params": {"name": "out"}},
    ],
    "edges": [{"from": "n.value", "to": "wait.x"}, {"from": "wait.y", "to": "out.value"}],
}


async def test_an_evaluation_outlives_its_server_and_can_be_cancelled(
    tmp_path: Path, sqlite_url: str
) -> None:
    rows = [{"inputs": {"n": n}, "expected": {"out": n}} for n in range(12)]
    asked: dict[str, Any] = {
        "variants": [{"name": "only"}],
        "evaluators": [{"output": "out", "kind": "equals"}],
    }
    app = create_app(make_config(tmp_path, sqlite_url), registry=api_test_registry())
    async with AsyncTestClient(app=app) as client:
        asked["workflow_id"] = (await client.post("/api/workflows", json=SLOW)).json()["id"]
        asked["dataset_id"] = (await client.post("/api/datasets", json={"rows": rows})).json()[
            "id"
        ]
        first = (await client.post("/api/evaluations", json=asked)).json()["id"]
        second = (await client.post("/api/evaluations", json=asked)).json()["id"]
        cancelled = await client.post(f"/api/evaluations/{second}/cancel")
        assert cancelled.json()["status"] == "cancelled"
        await asyncio.sleep(0.5)  # some rows of the first scored, then the server stops
    database = await Database.connect(sqlite_url)
    left = await EvaluationStore(database).evaluation(first, owner_id=None)
    await database.close()
    assert left.status == "interrupted"
    assert 0 < left.report["progress"]["done"] < 12
    app = create_app(make_config(tmp_path, sqlite_url), registry=api_test_registry())
    async with AsyncTestClient(app=app) as client:
        stopped = (await client.get(f"/api/evaluations/{first}")).json()
        assert stopped["status"] in ("running", "done")  # taken over at start-up
        evaluation = await finished(client, first)
        assert evaluation["status"] == "done"
        assert evaluation["report"]["progress"] == {"done": 12, "total": 12}
        assert evaluation["report"]["variants"]["only"]["pass_rate"] == 1.0
        assert (await client.get(f"/api/evaluations/{second}")).json()["status"] == "cancelled"


def test_an_evaluation_whose_server_was_killed_is_taken_over(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/killed.db"
    rows = [{"inputs": {"n": n}, "expected": {"out": n}} for n in range(12)]
    with Served(url, tmp_path / "a", test_nodes=True) as first:
        workflow_id = first.post("/api/workflows", json=SLOW).json()["id"]
        dataset_id = first.post("/api/datasets", json={"rows": rows}).json()["id"]
        evaluation_id = first.post("/api/evaluations", json={
            "workflow_id": workflow_id, "dataset_id": dataset_id,
            "variants": [{"name": "only"}], "evaluators": [{"output": "out", "kind": "equals"}],
        }).json()["id"]  # fmt: skip
        time.sleep(0.5)
        first.stop(kill=True)  # no clean shutdown: it stays `running`, its driver dead
    with Served(url, tmp_path / "b", test_nodes=True) as second:
        deadline = time.monotonic() + 30
        while (found := second.get(f"/api/evaluations/{evaluation_id}").json())["status"] != "done":
            assert time.monotonic() < deadline, found
            time.sleep(0.1)
        assert found["report"]["progress"] == {"done": 12, "total": 12}
        assert found["report"]["variants"]["only"]["pass_rate"] == 1.0

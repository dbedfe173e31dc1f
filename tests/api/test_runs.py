"""Runs over the API: start (waiting or not), read, list, rerun, tree, diff, cancel, resume;
on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.support.api import saved

Client = AsyncTestClient[Litestar]

SLOW: dict[str, Any] = {
    "schema_version": 1,
    "name": "Slow",
    "nodes": [
        {"id": "nap", "type": "sleep", "params": {"seconds": 30, "label": "late"}},
        {"id": "out", "type": "output", "params": {"name": "out"}},
    ],
    "edges": [{"from": "nap.y", "to": "out.value"}],
}


async def wait_finished(client: Client, run_id: str) -> dict[str, Any]:
    for _ in range(500):
        run = (await client.get(f"/api/runs/{run_id}")).json()
        if run["status"] not in ("running", "queued"):
            return dict(run)
        await asyncio.sleep(0.01)
    raise AssertionError(f"run {run_id} did not finish")


async def test_start_and_wait(client: Client) -> None:
    workflow_id = await saved(client)
    response = await client.post(
        f"/api/workflows/{workflow_id}/runs", json={"inputs": {"name": "Ada"}, "wait": True}
    )
    assert response.status_code == 201, response.text
    run = response.json()
    assert run["status"] == "succeeded"
    assert run["outputs"] == {"greeting": "Hello, Ada!"}
    assert run["workflow_id"] == workflow_id
    assert run["workflow_version"] == 1
    assert run["parent_run_id"] is None
    assert run["nodes"]["greet"]["status"] == "succeeded"
    assert run["nodes"]["greet"]["output"] == {"text": "Hello, Ada!"}
    assert (await client.get(f"/api/runs/{run['id']}")).json()["outputs"] == run["outputs"]


async def test_start_without_waiting(client: Client) -> None:
    workflow_id = await saved(client)
    response = await client.post(f"/api/workflows/{workflow_id}/runs", json={})
    assert response.status_code == 202
    finished = await wait_finished(client, response.json()["id"])
    assert finished["outputs"] == {"greeting": "Hello, world!"}
    no_body = await client.post(f"/api/workflows/{workflow_id}/runs")
    assert no_body.status_code == 202


async def test_bad_inputs_and_unknown_workflow(client: Client) -> None:
    workflow_id = await saved(client)
    bad = await client.post(f"/api/workflows/{workflow_id}/runs", json={"inputs": {"name": 5}})
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["code"] == "invalid_inputs"
    assert "name" in bad.json()["detail"]
    unknown = await client.post(f"/api/workflows/{workflow_id}/runs", json={"inputs": {"who": 1}})
    assert unknown.status_code == 422
    assert "unknown input 'who'" in unknown.json()["detail"]
    extra = await client.post(f"/api/workflows/{workflow_id}/runs", json={"input": {}})
    assert extra.status_code == 400
    assert (await client.post("/api/workflows/wf_missing/runs", json={})).status_code == 404
    assert (await client.get("/api/runs/run_missing")).status_code == 404
    assert (await client.get("/api/runs")).json()["items"] == []


async def test_list_rerun_tree_and_diff(client: Client) -> None:
    workflow_id = await saved(client)
    first = (await client.post(f"/api/workflows/{workflow_id}/runs", json={"wait": True})).json()
    rerun = await client.post(
        f"/api/runs/{first['id']}/rerun",
        json={"params": {"greet": {"template": "Hi, {{ name }}!"}}, "wait": True},
    )
    assert rerun.status_code == 201, rerun.text
    child = rerun.json()
    assert child["parent_run_id"] == first["id"]
    assert child["outputs"] == {"greeting": "Hi, world!"}
    assert child["nodes"]["name"]["status"] == "cached"
    assert child["nodes"]["greet"]["reason"] == "params changed: template"

    listed = (await client.get("/api/runs", params={"workflow_id": workflow_id})).json()
    assert [run["id"] for run in listed["items"]] == [child["id"], first["id"]]
    assert (await client.get("/api/runs", params={"status": "failed"})).json()["items"] == []
    assert (await client.get("/api/runs", params={"status": "bogus"})).status_code == 400

    tree = (await client.get(f"/api/runs/{child['id']}/tree")).json()
    assert tree["id"] == first["id"]
    assert [c["id"] for c in tree["children"]] == [child["id"]]
    assert tree["children"][0]["changed"] == {"params": {"greet": {"template": "Hi, {{ name }}!"}}}

    diff = (await client.get(f"/api/runs/{first['id']}/diff/{child['id']}")).json()
    greet = next(node for node in diff["nodes"] if node["node"] == "greet")
    assert greet["params_changed"] == ["template"]
    assert greet["output"] == "changed"

    bad = await client.post(f"/api/runs/{first['id']}/rerun", json={"from_node": "ghost"})
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["code"] == "missing_node"


async def test_cancel_and_resume(client: Client) -> None:
    workflow_id = await saved(client, SLOW)
    started = (await client.post(f"/api/workflows/{workflow_id}/runs", json={})).json()
    await asyncio.sleep(0.05)
    cancelled = await client.post(f"/api/runs/{started['id']}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    again = await client.post(f"/api/runs/{started['id']}/cancel")
    assert again.status_code == 409
    resume = await client.post(f"/api/runs/{started['id']}/resume", json={})
    assert resume.status_code == 409
    assert "only an interrupted run can be resumed" in resume.json()["detail"]


async def test_resume_an_interrupted_run(client: Client, database_url: str, tmp_path: Any) -> None:
    """A run left behind by a process that stopped is resumed through the API."""
    from engine.documents.document import from_builtins
    from engine.runs.service import RunService
    from engine.storage.database import Database
    from tests.support.nodes import api_test_registry

    short = dict(
        SLOW,
        nodes=[dict(SLOW["nodes"][0], params={"seconds": 0.3, "label": "late"}), SLOW["nodes"][1]],
    )
    database = await Database.connect(database_url)
    other = RunService(database, api_test_registry(), workspace=tmp_path / "other")
    active = await other.start(from_builtins(short))
    await asyncio.sleep(0.05)
    await other.close()  # the other process stops: its run is left interrupted
    await database.close()
    assert (await client.get(f"/api/runs/{active.id}")).json()["status"] == "interrupted"
    resumed = await client.post(f"/api/runs/{active.id}/resume", json={"wait": True})
    assert resumed.status_code == 201, resumed.text
    assert resumed.json()["status"] == "succeeded"
    assert resumed.json()["outputs"] == {"out": "late"}

"""`POST /api/runs/{id}/replay` (SPEC §17): a child run with `replay_of`, shown in the tree; a bad
`on_miss` or a run not finished is refused, nothing started."""

from __future__ import annotations

from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.support.api import saved


async def test_a_replay_through_the_api(client: AsyncTestClient[Litestar]) -> None:
    workflow_id = await saved(client)
    run = (await client.post(f"/api/workflows/{workflow_id}/runs", json={"wait": True})).json()
    replay = await client.post(f"/api/runs/{run['id']}/replay", json={"wait": True})
    assert replay.status_code == 201, replay.text
    child = replay.json()
    assert (child["replay_of"], child["parent_run_id"]) == (run["id"], run["id"])
    assert child["outputs"] == run["outputs"]
    assert child["nodes"]["greet"]["status"] == "succeeded"  # not recordable: executed again
    tree = (await client.get(f"/api/runs/{run['id']}/tree")).json()
    assert tree["children"][0]["replay_of"] == run["id"]

    runs_before = len((await client.get("/api/runs")).json()["items"])
    bad = await client.post(f"/api/runs/{run['id']}/replay", json={"on_miss": "maybe"})
    assert bad.status_code == 400
    assert "on_miss" in bad.text
    missing = await client.post("/api/runs/run_nothing/replay", json={})
    assert missing.status_code == 404
    assert len((await client.get("/api/runs")).json()["items"]) == runs_before


async def test_pinning_a_run(client: AsyncTestClient[Litestar]) -> None:
    workflow_id = await saved(client)
    run = (await client.post(f"/api/workflows/{workflow_id}/runs", json={"wait": True})).json()
    assert run["pinned_at"] is None
    pinned = await client.post(f"/api/runs/{run['id']}/pin")
    assert pinned.status_code == 200
    assert pinned.json()["pinned_at"] is not None
    unpinned = await client.delete(f"/api/runs/{run['id']}/pin")
    assert unpinned.json()["pinned_at"] is None
    assert (await client.post("/api/runs/run_nothing/pin")).status_code == 404

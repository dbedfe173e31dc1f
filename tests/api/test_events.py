"""Server-Sent Events of a run: past events replayed, live ones pushed to every client, ids and
Last-Event-ID, the end after run.finished."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from engine.runs import launch as runs
from tests.support.api import parse, saved

Client = AsyncTestClient[Litestar]

TOKENS: dict[str, Any] = {
    "schema_version": 1,
    "name": "Tokens",
    "nodes": [
        {"id": "words", "type": "ticker", "params": {"count": 4, "pause_s": 0.05}},
        {"id": "out", "type": "output", "params": {"name": "text"}},
    ],
    "edges": [{"from": "words.text", "to": "out.value"}],
}


async def read_events(client: Client, run_id: str, **headers: str) -> list[dict[str, Any]]:
    async with client.stream("GET", f"/api/runs/{run_id}/events", headers=headers) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        return parse((await response.aread()).decode())


async def test_replay_of_a_finished_run(lite: Client) -> None:
    workflow_id = await saved(lite)
    run = (await lite.post(f"/api/workflows/{workflow_id}/runs", json={"wait": True})).json()
    frames = await read_events(lite, run["id"])
    kinds = [frame["event"] for frame in frames]
    assert kinds[0] == "run.started"
    assert kinds[-1] == "run.finished"
    assert kinds.count("node.completed") == 3
    seqs = [frame["data"]["seq"] for frame in frames]
    assert seqs == sorted(seqs) == [int(frame["id"]) for frame in frames]
    completed = next(f["data"] for f in frames if f["event"] == "node.completed")
    assert set(completed) == {"type", "run_id", "node", "seq", "data"}
    assert completed["run_id"] == run["id"]
    assert completed["node"]
    assert completed["data"]["status"] == "succeeded"

    later = await read_events(lite, run["id"], **{"Last-Event-ID": str(seqs[2])})
    assert [f["data"]["seq"] for f in later] == seqs[3:]


async def test_live_events_reach_every_client(lite: Client) -> None:
    workflow_id = await saved(lite, TOKENS)
    run = (await lite.post(f"/api/workflows/{workflow_id}/runs", json={})).json()
    watchers = [asyncio.create_task(read_events(lite, run["id"])) for _ in range(3)]
    results = await asyncio.wait_for(asyncio.gather(*watchers), timeout=10)
    for frames in results:
        kinds = [frame["event"] for frame in frames]
        assert kinds[0] == "run.started"
        assert kinds[-1] == "run.finished"
        tokens = [f["data"]["data"]["text"] for f in frames if f["event"] == "node.token"]
        assert tokens == ["tick0 ", "tick1 ", "tick2 ", "tick3 "]
        seqs = [frame["data"]["seq"] for frame in frames]
        assert seqs == sorted(set(seqs))  # no event twice, none out of order
    assert results[0] == results[1] == results[2]


async def test_unknown_run(lite: Client) -> None:
    response = await lite.get("/api/runs/run_nope/events")
    assert response.status_code == 404


async def test_events_of_a_run_whose_row_is_not_stored_yet(
    lite: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A caller waiting for the end lets the row go with the first commit (here: the end). The
    # app runs in the test client's portal, on an event loop of its own.
    monkeypatch.setattr(runs, "DEFERRED_START_S", 60)
    engine, workflow_id = lite.app.state.engine, await saved(lite, TOKENS)

    async def start() -> Any:
        record, workflow = await engine.current_workflow(workflow_id, owner_id=None)
        return await engine.runs.start(
            workflow, {}, workflow_id=record.id, workflow_version=record.version, owner_id=None,
            caller_waits=True,
        )

    active = lite.blocking_portal.call(start)
    assert (await lite.get(f"/api/runs/{active.id}")).json()["status"] == "running"
    frames = await asyncio.wait_for(read_events(lite, active.id), timeout=10)
    kinds = [frame["event"] for frame in frames]
    assert (kinds[0], kinds[-1], kinds.count("node.token")) == ("run.started", "run.finished", 4)

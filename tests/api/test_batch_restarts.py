"""Batches outlive their server (SPEC §16): a batch whose `nodeloom serve` process stopped
(Ctrl-C, or killed) goes on when a server starts again on the database, every item run once;
a cancelled batch stays cancelled."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.serve import Served

ITEMS = 8
SLOW: dict[str, Any] = {
    "schema_version": 1,
    "name": "Slow items",
    "nodes": [
        {
            "id": "index",
            "type": "input",
            "params": {"name": "index", "schema": {"type": "integer"}},
        },
        {"id": "s", "type": "sleep", "params": {"seconds": 0.6}},
        {"id": "out", "type": "output", "params": {"name": "index"}},
    ],
    "edges": [{"from": "index.value", "to": "s.x"}, {"from": "s.y", "to": "out.value"}],
}


def batch_of(server: Served, batch_id: str) -> dict[str, Any]:
    response = server.get(f"/api/batches/{batch_id}")
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


def until(server: Served, batch_id: str, done: Any, timeout: float = 40.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        batch = batch_of(server, batch_id)
        if done(batch):
            return batch
        assert time.monotonic() < deadline, batch
        time.sleep(0.1)


@pytest.mark.parametrize("kill", [False, True], ids=["stopped", "killed"])
def test_a_batch_goes_on_after_a_restart(tmp_path: Path, kill: bool) -> None:
    url = f"sqlite:///{tmp_path}/batches.db"
    with Served(url, tmp_path, name="first", test_nodes=True) as first:
        workflow_id = first.post("/api/workflows", json=SLOW).json()["id"]
        started = first.post(
            f"/api/workflows/{workflow_id}/runs/batch", json={"inputs": {}, "count": ITEMS}
        )
        assert started.status_code == 202, started.text
        batch_id = started.json()["id"]
        until(first, batch_id, lambda batch: batch["progress"]["done"] >= 2)
        first.stop(kill=kill)
    with Served(url, tmp_path, name="second", test_nodes=True) as second:
        left = batch_of(second, batch_id)
        assert left["progress"]["done"] < ITEMS
        batch = until(second, batch_id, lambda batch: batch["progress"]["status"] == "finished")
        runs = second.get("/api/runs", params={"trigger": f"batch:{batch_id}", "limit": 100})
        logs = second.output()
    assert batch["progress"]["done"] == ITEMS
    assert batch["progress"]["failed"] == 0
    assert [run["outputs"] for run in batch["runs"]] == [{"index": i} for i in range(ITEMS)]
    run_ids = [run["run_id"] for run in batch["runs"]]
    assert len(set(run_ids)) == ITEMS
    assert sorted(run["id"] for run in runs.json()["items"]) == sorted(run_ids)  # one each
    assert "batch taken over" in logs


def test_a_cancelled_batch_stays_cancelled(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/batches.db"
    with Served(url, tmp_path, name="first", test_nodes=True) as first:
        workflow_id = first.post("/api/workflows", json=SLOW).json()["id"]
        started = first.post(
            f"/api/workflows/{workflow_id}/runs/batch", json={"inputs": {}, "count": ITEMS}
        )
        batch_id = started.json()["id"]
        until(first, batch_id, lambda batch: batch["progress"]["running"] >= 1)
        cancelled = first.post(f"/api/batches/{batch_id}/cancel")
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["progress"]["status"] == "cancelled"
        before = [run["run_id"] for run in cancelled.json()["runs"]]
    with Served(url, tmp_path, name="second", test_nodes=True) as second:
        time.sleep(1.5)
        batch = batch_of(second, batch_id)
        runs = second.get("/api/runs", params={"trigger": f"batch:{batch_id}", "limit": 100})
    assert batch["progress"]["status"] == "cancelled"
    assert [run["run_id"] for run in batch["runs"]] == before
    assert len(runs.json()["items"]) == len([run for run in before if run])
    assert batch["progress"]["pending"] > 0

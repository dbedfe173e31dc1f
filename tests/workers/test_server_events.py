"""A server whose runs execute on workers streams the live events of a run that another server
queued: it follows them through the LISTEN feed, not by polling."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from engine.distributed.launch import Queued
from engine.runs.service import RunService
from server.app import create_app
from tests.support.api import make_config, parse
from tests.support.documents import workflow
from tests.support.nodes import api_test_registry
from tests.support.workers import fan_out


async def test_events_of_a_run_queued_by_another_server(
    workers: Any,
    queued: RunService,
    pg_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    workers(1)
    config = make_config(tmp_path, pg_url, execution="workers")
    app = create_app(config, registry=api_test_registry())
    nodes, edges = fan_out(2, 0.3)
    active = await queued.start(workflow(nodes, edges))  # through the other server
    async with AsyncTestClient(app=app) as client:
        engine = app.state.engine
        assert isinstance(engine.runs.launcher, Queued)  # it follows the LISTEN feed
        async with client.stream("GET", f"/api/runs/{active.id}/events") as response:
            assert response.status_code == 200
            frames = parse((await response.aread()).decode())
    kinds = [frame["event"] for frame in frames]
    assert kinds[0] == "run.started"
    assert kinds[-1] == "run.finished"
    assert kinds.count("node.completed") == len(nodes)
    assert [int(frame["id"]) for frame in frames] == list(range(1, len(frames) + 1))
    assert frames[-1]["data"]["data"]["status"] == "succeeded"

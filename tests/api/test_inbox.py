"""Waiting for a person through the API (SPEC §16): the inbox, answers checked (422) and refused
when nothing waits (409), another user's run (404), and a run that waits while `nodeloom serve`
is stopped and started again, answered after, then rerun reusing the answer."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.support.accounts import tokens_for
from tests.support.api import make_config
from tests.support.approvals import APPROVAL_DOCUMENT as APPROVAL
from tests.support.network import free_port
from tests.support.nodes import api_test_registry


async def test_inbox_and_answers(client: AsyncTestClient[Litestar]) -> None:
    workflow_id = (await client.post("/api/workflows", json=APPROVAL)).json()["id"]
    started = await client.post(f"/api/workflows/{workflow_id}/runs", json={"wait": True})
    assert started.status_code == 201
    run = started.json()
    assert (run["status"], run["nodes"]["ask"]["status"]) == ("waiting", "waiting")
    [item] = (await client.get("/api/inbox")).json()["items"]
    assert item["run_id"] == run["id"]
    assert item["node"] == "ask"
    assert item["prompt"] == "How many copies of a memo?"
    assert item["schema"] == {"type": "integer", "minimum": 1}
    assert item["workflow_name"] == "Approval"

    url = f"/api/runs/{run['id']}/nodes/ask/answer"
    bad = await client.post(url, json={"answer": 0})
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["code"] == "invalid_answer"
    assert "minimum of 1" in bad.json()["detail"]
    assert (await client.get(f"/api/runs/{run['id']}")).json()["status"] == "waiting"
    not_waiting = await client.post(f"/api/runs/{run['id']}/nodes/draft/answer", json={"answer": 1})
    assert not_waiting.status_code == 409
    unknown = await client.post("/api/runs/run_nothing/nodes/ask/answer", json={"answer": 1})
    assert unknown.status_code == 404

    done = await client.post(url, json={"answer": 3, "wait": True})
    assert done.status_code == 201
    assert (done.json()["status"], done.json()["outputs"]) == ("succeeded", {"copies": "3 copies"})
    assert (await client.get("/api/inbox")).json()["items"] == []
    assert (await client.post(url, json={"answer": 4})).status_code == 409


async def test_only_the_runs_owner_sees_and_answers(tmp_path: Path, sqlite_url: str) -> None:
    ada, bob = await tokens_for(sqlite_url, "ada", "bob")
    as_ada, as_bob = ({"Authorization": f"Bearer {token}"} for token in (ada, bob))
    from server.app import create_app

    app = create_app(make_config(tmp_path, sqlite_url), registry=api_test_registry())
    async with AsyncTestClient(app=app) as client:
        workflow_id = (await client.post("/api/workflows", json=APPROVAL, headers=as_ada)).json()[
            "id"
        ]
        run = await client.post(
            f"/api/workflows/{workflow_id}/runs", json={"wait": True}, headers=as_ada
        )
        url = f"/api/runs/{run.json()['id']}/nodes/ask/answer"
        assert len((await client.get("/api/inbox", headers=as_ada)).json()["items"]) == 1
        assert (await client.get("/api/inbox", headers=as_bob)).json()["items"] == []
        assert (await client.post(url, json={"answer": 2}, headers=as_bob)).status_code == 404
        assert (await client.post(url, json={"answer": 2}, headers=as_ada)).status_code == 202


@contextlib.contextmanager
def serving(folder: Path, port: int) -> Iterator[str]:
    env = {**os.environ, "NODELOOM_MODELS_DIR": str(folder / "models")}
    command = [
        sys.executable, "-m", "server.cli", "serve", "--port", str(port),
        "--db", f"sqlite:///{folder}/inbox.db", "--workspace", str(folder / "ws"),
    ]  # fmt: skip
    log = (folder / "serve.log").open("ab")
    process = subprocess.Popen(command, stdout=log, stderr=log, env=env, cwd=folder)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{url}/api/health")
                break
            except httpx.TransportError:
                assert process.poll() is None, (folder / "serve.log").read_text()
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.1)
        yield url
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
        log.close()


def test_a_waiting_run_survives_a_restart_of_the_server(tmp_path: Path) -> None:
    port = free_port()
    with serving(tmp_path, port) as url:
        workflow_id = httpx.post(f"{url}/api/workflows", json=APPROVAL).json()["id"]
        run = httpx.post(f"{url}/api/workflows/{workflow_id}/runs", json={"wait": True}).json()
        assert run["status"] == "waiting"
    with serving(tmp_path, port) as url:  # another process, the same database
        assert [item["run_id"] for item in httpx.get(f"{url}/api/inbox").json()["items"]] == [
            run["id"]
        ]
        done = httpx.post(
            f"{url}/api/runs/{run['id']}/nodes/ask/answer", json={"answer": 5, "wait": True}
        ).json()
        assert (done["status"], done["outputs"]) == ("succeeded", {"copies": "5 copies"})
        rerun = httpx.post(f"{url}/api/runs/{run['id']}/rerun", json={"wait": True}).json()
        assert rerun["status"] == "succeeded"
        assert rerun["nodes"]["ask"]["status"] == "cached"
        assert rerun["outputs"] == {"copies": "5 copies"}


async def test_the_server_ends_a_wait_whose_time_is_up(client: AsyncTestClient[Litestar]) -> None:
    ask = {**APPROVAL["nodes"][1]}
    ask["params"] = {**ask["params"], "timeout_s": 0.2, "on_timeout": "default", "default": 2}
    document = {**APPROVAL, "nodes": [APPROVAL["nodes"][0], ask, *APPROVAL["nodes"][2:]]}
    workflow_id = (await client.post("/api/workflows", json=document)).json()["id"]
    run = (await client.post(f"/api/workflows/{workflow_id}/runs", json={"wait": True})).json()
    assert run["status"] == "waiting"
    [item] = (await client.get("/api/inbox")).json()["items"]
    assert item["deadline"] > item["since"]
    deadline = time.monotonic() + 10
    while (found := (await client.get(f"/api/runs/{run['id']}")).json())["status"] != "succeeded":
        assert time.monotonic() < deadline, found
        await asyncio.sleep(0.1)
    assert found["outputs"] == {"copies": "2 copies"}

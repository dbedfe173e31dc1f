"""Runs that wait for a person (SPEC §16) on workers: a `human_input` node is parked on the
queue, the run waits holding nothing once nothing else is in flight, and an answer (checked
against the schema), a timeout or a cancel settles it on the queue, once, whether the run still
executes other branches or waits."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from engine.distributed.launch import Queued
from engine.errors import AnswerInvalid, Conflict
from engine.runs.service import RunService
from server.app import create_app
from tests.support.api import make_config
from tests.support.approvals import APPROVAL, APPROVAL_DOCUMENT, asking
from tests.support.documents import workflow
from tests.support.nodes import api_test_registry


async def finished(handle: Any) -> Any:
    return await asyncio.wait_for(handle.wait(), 20)


async def test_a_run_on_workers_waits_and_the_answer_goes_on_there(
    workers: Any, queued: RunService
) -> None:
    workers(1)
    record = await finished(await queued.start(APPROVAL))
    assert record.status == "waiting", record.error
    assert record.finished_at is None
    assert record.nodes["ask"].status == "waiting"
    assert queued.active == {}  # a waiting run holds nothing
    [waiting] = await queued.inbox()
    assert (waiting.run_id, waiting.prompt, waiting.choices) == (
        record.id,
        "Publish a memo?",
        ["yes", "no"],
    )
    with pytest.raises(AnswerInvalid, match="does not fit"):
        await queued.answer(record.id, "ask", "maybe")
    with pytest.raises(Conflict, match="not waiting"):
        await queued.answer(record.id, "draft", "yes")

    done = await finished(await queued.answer(record.id, "ask", "yes"))
    assert done.status == "succeeded", done.error
    assert done.outputs == {"published": "Published a memo.", "decision": "yes"}
    assert done.nodes["shelve"].status == "skipped"
    assert await queued.inbox() == []
    with pytest.raises(Conflict, match="not waiting"):
        await queued.answer(record.id, "ask", "no")
    events = [json.loads(data)["type"] for _, data in await queued.events(record.id)]
    assert events.count("node.waiting") == 1
    assert events.count("run.finished") == 2  # it waited, then it ended
    assert events[-1] == "run.finished"

    # The answer is the node's result: a rerun on the workers reuses it.
    again = await finished(await queued.rerun(record.id))
    assert (again.status, again.nodes["ask"].status) == ("succeeded", "cached")


async def test_an_answer_on_workers_while_other_branches_still_run(
    workers: Any, queued: RunService
) -> None:
    workers(1)
    both = workflow(
        [
            {"id": "ask", "type": "human_input", "params": {"prompt": "Name?"}},
            {"id": "hello", "type": "template", "params": {"template": "Hello {{ x }}"}},
            {"id": "greeting", "type": "output", "params": {"name": "greeting"}},
            {"id": "slow", "type": "sleep", "params": {"seconds": 1.5, "label": "slept"}},
            {"id": "later", "type": "output", "params": {"name": "later"}},
        ],
        [("ask.answer", "hello.x"), ("hello.text", "greeting.value"), ("slow.y", "later.value")],
    )
    handle = await queued.start(both)
    for _ in range(200):  # the question is asked while `slow` sleeps
        if await queued.inbox():
            break
        await asyncio.sleep(0.02)
    [waiting] = await queued.inbox()
    assert (waiting.run_id, (await queued.get(handle.id)).status) == (handle.id, "running")
    same = await queued.answer(handle.id, "ask", "Ada")
    assert same is handle  # the run followed here already
    done = await finished(handle)
    assert done.status == "succeeded", done.error
    assert done.outputs == {"greeting": "Hello Ada", "later": "slept"}
    assert done.finished_at is not None


async def test_waits_on_workers_time_out_or_are_cancelled(
    workers: Any, queued: RunService
) -> None:
    workers(1)
    kept = await finished(
        await queued.start(asking(timeout_s=0.1, on_timeout="default", default="later"))
    )
    failed = await finished(await queued.start(asking(timeout_s=0.1)))
    open_ended = await finished(await queued.start(asking()))
    assert {kept.status, failed.status, open_ended.status} == {"waiting"}
    await asyncio.sleep(0.2)
    assert sorted(await queued.expire_waiting()) == sorted([f"{kept.id}:ask", f"{failed.id}:ask"])
    for resumed in list(queued.active.values()):
        await finished(resumed)
    assert (await queued.get(kept.id)).outputs == {"answer": "later"}
    timed_out = await queued.get(failed.id)
    assert (timed_out.status, timed_out.nodes["ask"].error) == ("failed", "no answer within 0.1 s")

    cancelled = await queued.cancel(open_ended.id)
    assert cancelled.status == "cancelled"
    assert cancelled.nodes["ask"].status == "cancelled"
    assert await queued.inbox() == []
    with pytest.raises(Conflict, match="not waiting"):
        await queued.answer(open_ended.id, "ask", "too late")


async def test_the_api_of_a_server_on_workers_answers_a_waiting_run(
    workers: Any, database: Any, pg_url: str, tmp_path: Path
) -> None:
    workers(1)  # on the database migrated by the `database` fixture
    config = make_config(tmp_path, pg_url, execution="workers")
    app = create_app(config, registry=api_test_registry())
    async with AsyncTestClient(app=app) as client:
        assert isinstance(app.state.engine.runs.launcher, Queued)
        workflow_id = (await client.post("/api/workflows", json=APPROVAL_DOCUMENT)).json()["id"]
        started = await client.post(f"/api/workflows/{workflow_id}/runs", json={"wait": True})
        assert started.status_code == 201, started.text
        run = started.json()
        assert (run["status"], run["nodes"]["ask"]["status"]) == ("waiting", "waiting")
        [item] = (await client.get("/api/inbox")).json()["items"]
        assert (item["run_id"], item["prompt"]) == (run["id"], "How many copies of a memo?")
        url = f"/api/runs/{run['id']}/nodes/ask/answer"
        assert (await client.post(url, json={"answer": 0})).status_code == 422
        answered = await client.post(url, json={"answer": 3, "wait": True})
        assert answered.status_code == 201, answered.text
        assert (answered.json()["status"], answered.json()["outputs"]) == (
            "succeeded",
            {"copies": "3 copies"},
        )
        again = await client.post(url, json={"answer": 4})
        assert again.status_code == 409

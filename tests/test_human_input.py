"""Runs that wait for a person (SPEC §16), on SQLite and a real PostgreSQL: a `human_input` node
waits, its run ends `waiting` holding nothing, the answer (checked against the schema) resumes
it, in this process or in another one started later; choices route; a rerun reuses the answer;
a wait times out with its default or fails; a waiting run can be cancelled."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from engine.errors import AnswerInvalid, Conflict, WorkflowInvalid
from engine.runs.service import RunService
from engine.storage.database import Database
from tests.support.approvals import APPROVAL, asking
from tests.support.documents import workflow
from tests.support.nodes import test_registry


async def test_a_run_waits_for_the_answer_and_the_answer_routes(service: RunService) -> None:
    record = await (await service.start(APPROVAL)).wait()
    assert record.status == "waiting"
    assert record.finished_at is None
    assert record.nodes["ask"].status == "waiting"
    assert record.nodes["publish"].status == "pending"
    assert service.active == {}  # a waiting run holds nothing
    [waiting] = await service.inbox()
    assert (waiting.run_id, waiting.node, waiting.prompt) == (record.id, "ask", "Publish a memo?")
    assert waiting.choices == ["yes", "no"]
    assert waiting.schema == {"enum": ["yes", "no"]}

    with pytest.raises(AnswerInvalid, match="does not fit"):
        await service.answer(record.id, "ask", "maybe")
    with pytest.raises(Conflict, match="not waiting"):
        await service.answer(record.id, "draft", "yes")
    assert (await service.get(record.id)).status == "waiting"  # still

    done = await (await service.answer(record.id, "ask", "yes")).wait()
    assert done.status == "succeeded", done.error
    assert done.outputs == {"published": "Published a memo.", "decision": "yes"}
    assert done.nodes["shelve"].status == "skipped"
    assert done.nodes["ask"].output == {"answer": "yes", "yes": "a memo"}
    assert await service.inbox() == []
    with pytest.raises(Conflict, match="not waiting"):
        await service.answer(record.id, "ask", "no")

    # The answer is the node's result: a rerun reuses it, unless its inputs change.
    again = await (await service.rerun(record.id)).wait()
    assert again.status == "succeeded"
    assert again.nodes["ask"].status == "cached"
    changed = await (await service.rerun(record.id, inputs={"draft": "a poem"})).wait()
    assert changed.status == "waiting"
    assert [w.prompt for w in await service.inbox()] == ["Publish a poem?"]


async def test_a_waiting_run_survives_its_process(database_url: str, tmp_path: Path) -> None:
    database = await Database.connect(database_url)
    first = RunService(database, test_registry(), workspace=tmp_path)
    run_id = (await (await first.start(asking(schema={"type": "integer"}))).wait()).id
    await first.close()
    await database.close()

    database = await Database.connect(database_url)  # a new process, as after a restart
    second = RunService(database, test_registry(), workspace=tmp_path)
    try:
        assert await second.recover() == []  # waiting is not interrupted
        [waiting] = await second.inbox()
        assert (waiting.run_id, waiting.schema) == (run_id, {"type": "integer"})
        with pytest.raises(AnswerInvalid, match="is not of type 'integer'"):
            await second.answer(run_id, "ask", "seven")
        done = await (await second.answer(run_id, "ask", 7)).wait()
        assert (done.status, done.outputs) == ("succeeded", {"answer": 7})
        events = [json.loads(data)["type"] for _, data in await second.events(run_id)]
        assert events.count("run.started") == 2
        assert "node.waiting" in events
        assert events[-1] == "run.finished"
    finally:
        await second.close()
        await database.close()


async def test_a_wait_times_out_with_its_default_or_fails(service: RunService) -> None:
    kept = await (
        await service.start(asking(timeout_s=0.1, on_timeout="default", default="later"))
    ).wait()
    failed = await (await service.start(asking(timeout_s=0.1))).wait()
    open_ended = await (await service.start(asking())).wait()
    await asyncio.sleep(0.2)
    ended = await service.expire_waiting()
    assert sorted(ended) == sorted([f"{kept.id}:ask", f"{failed.id}:ask"])
    for resumed in list(service.active.values()):
        await resumed.wait()
    assert (await service.get(kept.id)).outputs == {"answer": "later"}
    timed_out = await service.get(failed.id)
    assert timed_out.status == "failed"
    assert timed_out.nodes["ask"].error == "no answer within 0.1 s"
    assert (await service.get(open_ended.id)).status == "waiting"
    assert await service.expire_waiting() == []


async def test_a_waiting_run_can_be_cancelled(service: RunService) -> None:
    record = await (await service.start(asking())).wait()
    cancelled = await service.cancel(record.id)
    assert cancelled.status == "cancelled"
    assert cancelled.nodes["ask"].status == "cancelled"
    assert await service.inbox() == []


def test_a_default_that_does_not_fit_is_refused(service: RunService) -> None:
    with pytest.raises(WorkflowInvalid, match="default"):
        service.plan(asking(schema={"type": "integer"}, on_timeout="default", default="x"))


async def test_an_answer_while_other_branches_still_run(service: RunService) -> None:
    both = workflow(
        [
            {"id": "ask", "type": "human_input", "params": {"prompt": "Name?"}},
            {"id": "hello", "type": "template", "params": {"template": "Hello {{ x }}"}},
            {"id": "greeting", "type": "output", "params": {"name": "greeting"}},
            {"id": "slow", "type": "sleep", "params": {"seconds": 1.0, "label": "slept"}},
            {"id": "later", "type": "output", "params": {"name": "later"}},
        ],
        [("ask.answer", "hello.x"), ("hello.text", "greeting.value"), ("slow.y", "later.value")],
    )
    handle = await service.start(both)
    for _ in range(100):  # the question is asked while `slow` sleeps
        if await service.inbox():
            break
        await asyncio.sleep(0.02)
    [waiting] = await service.inbox()
    assert (waiting.run_id, (await service.get(handle.id)).status) == (handle.id, "running")
    with pytest.raises(AnswerInvalid):
        await service.answer(handle.id, "ask", 7)
    same = await service.answer(handle.id, "ask", "Ada")
    assert same is handle  # taken by the execution going on
    done = await handle.wait()
    assert done.status == "succeeded", done.error
    assert done.outputs == {"greeting": "Hello Ada", "later": "slept"}
    with pytest.raises(Conflict, match="not waiting"):
        await service.answer(handle.id, "ask", "Bob")


async def test_a_wait_times_out_while_other_branches_still_run(service: RunService) -> None:
    both = workflow(
        [
            {
                "id": "ask",
                "type": "human_input",
                "params": {"timeout_s": 0.1, "on_timeout": "default", "default": "nobody"},
            },
            {"id": "who", "type": "output", "params": {"name": "who"}},
            {"id": "slow", "type": "sleep", "params": {"seconds": 1.5, "label": "slept"}},
            {"id": "later", "type": "output", "params": {"name": "later"}},
        ],
        [("ask.answer", "who.value"), ("slow.y", "later.value")],
    )
    handle = await service.start(both)
    for _ in range(100):  # the question is asked while `slow` sleeps
        if await service.inbox():
            break
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.15)
    assert (await service.get(handle.id)).status == "running"
    assert await service.expire_waiting() == [f"{handle.id}:ask"]  # not only once it waits
    done = await handle.wait()
    assert (done.status, done.outputs) == ("succeeded", {"who": "nobody", "later": "slept"})
    assert await service.inbox() == []

"""Bodies on workers (SPEC §12): the nodes of a map's items, a loop's iterations and a
subgraph are jobs like any node, spread over the workers, settled once each (a killed worker's
taken over), and the body node answers once its last instance ended; reruns reach into them as
in-process."""

from __future__ import annotations

import asyncio
import json
import signal
from collections import Counter
from pathlib import Path
from typing import Any

from sqlalchemy import text

from engine.distributed.launch import Queued
from engine.nodes.types import NodeContext, NodeType, Port
from engine.runs.service import RunService
from engine.storage.database import Database
from tests.support.bodies import (
    SHOUT_DOCUMENT,
    SHOUT_IDS,
    body,
    looped,
    mapped,
    nested,
    shout,
    terse,
)
from tests.support.documents import workflow
from tests.support.nodes import test_registry
from tests.support.workers import live_jobs_after_draining


async def finished(handle: Any, within_s: float = 30) -> Any:
    return await asyncio.wait_for(handle.wait(), within_s)


async def executions(database: Database, run_id: str) -> dict[str, tuple[str, int, str | None]]:
    """The run's node_executions rows: status, attempt and worker by node."""
    async with database.engine.connect() as connection:
        rows = await connection.execute(
            text(
                "SELECT node_id, status, attempt, worker FROM node_executions WHERE run_id = :run"
            ),
            {"run": run_id},
        )
        return {node: (status, attempt, worker) for node, status, attempt, worker in rows}


async def event_types(queued: RunService, run_id: str) -> list[tuple[str, str | None]]:
    return [
        (found["type"], found.get("node"))
        for found in (json.loads(data) for _, data in await queued.events(run_id))
    ]


def slow(seconds: float) -> Any:
    """`mapped`, its body's wait ``seconds`` long, 8 items at once."""
    return mapped(shout(seconds), concurrency=8)


async def test_a_map_on_workers_spreads_its_items_and_answers_after_them(
    workers: Any, queued: RunService, database: Database
) -> None:
    workers(2, "--concurrency", "2")
    words = ["a", "bee", "sea", "d", "e", "f"]
    record = await finished(await queued.start(slow(0.3), {"words": words}))
    assert record.status == "succeeded", record.error
    assert record.outputs == {"loud": [w.upper() + "!" for w in words], "errors": []}
    assert record.nodes["m"].progress == {"done": 6, "failed": 0, "total": 6}
    assert record.nodes["m"].attempt == 1
    assert record.nodes["m[1]/up"].output == {"text": "BEE!"}
    assert {f"m[{i}]/{n}" for i in range(6) for n in SHOUT_IDS} <= record.nodes.keys()
    rows = await executions(database, record.id)
    assert {status for status, _, _ in rows.values()} == {"done"}
    # Each inner node a job taken once, but inputs and outputs, settled as they got ready;
    # the items' waits on both workers.
    jobs = {f"m[{i}]/{n}" for i in range(6) for n in ("wait", "up")}
    assert {n for n, (_, attempt, _) in rows.items() if attempt == 1 and "/" in n} == jobs
    assert {record.nodes[node].attempt for node in record.nodes if node.startswith("m[")} == {1}
    assert len({rows[f"m[{i}]/wait"][2] for i in range(6)}) == 2
    # Events: each inner node started and completed once, the map completes after its items.
    events = await event_types(queued, record.id)
    completed = [node for kind, node in events if kind == "node.completed"]
    assert Counter(completed)["m[3]/up"] == 1
    assert completed.index("m") > max(completed.index(f"m[{i}]/out") for i in range(6))
    assert [kind for kind, node in events if node == "m"] == ["node.started", "node.completed"]
    # What the map ran is gone with the run's end; the queue is empty.
    async with database.engine.connect() as connection:
        left = await connection.scalar(text("SELECT count(*) FROM body_instances"))
    assert left == 0
    assert await live_jobs_after_draining(database) == 0
    # The same as in-process.
    here = RunService(database, test_registry())
    try:
        local = await here.execute(slow(0.0), {"words": words})
    finally:
        await here.close()
    assert local.outputs == record.outputs
    assert set(local.nodes) == set(record.nodes)


async def test_item_failures_loops_and_nested_bodies_on_workers(
    workers: Any, queued: RunService
) -> None:
    workers(2)
    failing = await finished(await queued.start(mapped(concurrency=1), {"words": ["a", 7, "c"]}))
    assert failing.status == "failed"
    assert failing.nodes["m"].error is not None
    assert failing.nodes["m"].error.startswith("item 1: m[1]/")
    assert "m[2]/word" not in failing.nodes  # no item starts after the failure
    assert failing.nodes["loud"].status == "skipped"

    nulls = await finished(
        await queued.start(mapped(on_item_error="null"), {"words": ["a", 7, "c"]})
    )
    assert nulls.status == "succeeded", nulls.error
    assert nulls.outputs["loud"] == ["A!", None, "C!"]
    assert nulls.nodes["m"].progress == {"done": 3, "failed": 1, "total": 3}

    loop = await finished(await queued.start(looped(max_iterations=10, until="size | int >= 4")))
    assert loop.status == "succeeded", loop.error
    assert loop.outputs == {"text": "baaa", "times": 3}
    assert "lp#4/add" not in loop.nodes
    assert loop.nodes["lp"].progress == {"done": 3, "failed": 0, "total": 3}

    deep = await finished(await queued.start(nested(), {"words": ["x", "y"]}))
    assert deep.status == "succeeded", deep.error
    assert deep.outputs == {"loud": ["X!", "Y!"]}
    assert deep.nodes["m[1]/s/up"].output == {"text": "Y!"}
    assert deep.nodes["m[1]/s"].progress == {"done": 1, "failed": 0, "total": 1}

    empty = await finished(await queued.start(mapped(), {"words": []}))
    assert (empty.status, empty.outputs) == ("succeeded", {"loud": [], "errors": []})


async def test_reruns_on_workers_reach_into_bodies(workers: Any, queued: RunService) -> None:
    workers(2)
    parent = await finished(await queued.start(mapped(), {"words": ["a", "b", "c"]}))
    assert parent.status == "succeeded", parent.error
    child = await finished(await queued.rerun(parent.id, inputs={"words": ["a", "B", "c"]}))
    assert child.status == "succeeded", child.error
    assert child.outputs["loud"] == ["A!", "B!", "C!"]
    assert child.nodes["m[1]/word"].reason_code == "input_changed"
    assert child.nodes["m[1]/wait"].reason_code == "upstream_changed"
    assert child.nodes["m[1]/wait"].status == "succeeded"
    for item in (0, 2):  # taken over whole, by reference
        assert child.nodes[f"m[{item}]/up"].reason == f"reused from run {parent.id}"
        assert child.nodes[f"m[{item}]/wait"].status == "cached"

    asking = {"m/up": {"template": "{{ w.upper() }}{{ suffix }}?"}}
    changed = await finished(await queued.rerun(child.id, params=asking))
    assert changed.status == "succeeded", changed.error
    assert changed.outputs["loud"] == ["A!?", "B!?", "C!?"]
    assert changed.nodes["m[1]/up"].reason == "params changed: template"
    assert changed.nodes["m[1]/wait"].reason_code == "reused"

    again = await finished(await queued.rerun(changed.id, params={"loud": {}}))
    assert again.nodes["m"].reason_code == "reused"

    loop = await finished(await queued.start(looped(max_iterations=3)))
    longer = await finished(await queued.rerun(loop.id, params={"lp": {"max_iterations": 5}}))
    assert longer.outputs == {"text": "b" + "a" * 5, "times": 5}
    assert all(longer.nodes[f"lp#{i}/more"].reason_code == "reused" for i in (1, 2, 3))
    assert all(longer.nodes[f"lp#{i}/more"].status == "succeeded" for i in (4, 5))


async def test_a_cancelled_map_on_workers_starts_no_more_items(
    workers: Any, queued: RunService, database: Database
) -> None:
    workers(1, "--concurrency", "2")
    document = mapped(shout(1.0), concurrency=2)  # two items at a time
    handle = await queued.start(document, {"words": ["a", "b", "c", "d", "e", "f"]})
    for _ in range(200):
        rows = await executions(database, handle.id)
        running = [node for node, (status, _, _) in rows.items() if status == "running"]
        if any(node.endswith("/wait") for node in running):
            break
        await asyncio.sleep(0.05)
    record = await asyncio.wait_for(queued.cancel(handle.id), 30)
    assert record.status == "cancelled"
    assert record.nodes["m"].status == "cancelled"
    assert "m[5]/word" not in record.nodes  # never started
    assert record.nodes["m[0]/wait"].status == "cancelled"
    assert await live_jobs_after_draining(database) == 0


async def test_a_killed_workers_items_are_taken_over(
    workers: Any, queued: RunService, database: Database
) -> None:
    victim, survivor = workers(2, "--concurrency", "4")
    handle = await queued.start(slow(1.5), {"words": list("abcdefgh")})
    for _ in range(400):
        rows = await executions(database, handle.id)
        held = [
            node
            for node, (status, _, worker) in rows.items()
            if status == "running" and worker and worker.endswith(victim.name_suffix)
        ]
        if any(node.endswith("/wait") for node in held):
            break
        await asyncio.sleep(0.02)
    victim.signal(signal.SIGKILL)
    record = await finished(handle, 60)
    assert record.status == "succeeded", record.error
    assert record.outputs["loud"] == [w.upper() + "!" for w in "abcdefgh"]
    rows = await executions(database, handle.id)
    taken_over = [node for node in held if node.endswith("/wait")]
    assert taken_over
    for node in taken_over:
        _, attempt, worker = rows[node]
        assert attempt >= 2
        assert worker is not None
        assert worker.endswith(survivor.name_suffix)
    events = await event_types(queued, handle.id)
    completed = Counter(node for kind, node in events if kind == "node.completed")
    assert set(completed.values()) == {1}


async def test_a_map_on_workers_runs_a_saved_workflow(workers: Any, queued: RunService) -> None:
    workers(1)
    saved = await queued.store.create_workflow(workflow(**terse(SHOUT_DOCUMENT)))
    caller = mapped()
    caller.nodes[1].params = {"workflow": saved.id}
    record = await finished(await queued.start(caller, {"words": ["a", "b"]}))
    assert record.status == "succeeded", record.error
    assert record.outputs["loud"] == ["A!", "B!"]
    assert record.nodes["m[1]/up"].output == {"text": "B!"}


class OnlyOnTheServer(NodeType):
    """A node type the server has and the workers lack."""

    type = "only_here"
    inputs = (Port("x"),)
    outputs = (Port("y"),)

    async def run(self, inputs: dict[str, Any], context: NodeContext) -> dict[str, Any]:
        return {"y": inputs["x"]}


async def test_a_node_type_the_worker_lacks_inside_a_body_fails_that_item(
    workers: Any, database: Database
) -> None:
    registry = test_registry()
    registry.register(OnlyOnTheServer)
    service = RunService(database, registry, launcher=Queued(database, workspace=Path("ws")))
    workers(1)
    inner = body(
        [
            {"id": "word", "type": "input", "params": {"name": "word"}},
            {"id": "odd", "type": "only_here", "params": {}},
            {"id": "out", "type": "output", "params": {"name": "loud"}},
        ],
        ("word.value", "odd.x"),
        ("odd.y", "out.value"),
    )
    try:
        record = await finished(await service.start(mapped(inner), {"words": ["a"]}))
    finally:
        await service.close()
    assert record.status == "failed"
    assert "node type 'only_here' is not installed on worker" in (
        record.nodes["m[0]/odd"].error or ""
    )
    assert (record.nodes["m"].error or "").startswith("item 0: m[0]/odd: node type")

"""Workers: fencing of attempts, cancelling across processes, missing node types, a database
that went away or was never migrated, and following a run's events."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, ClassVar

import pytest
from pgqueuer.domain.models import Job
from sqlalchemy import text

from engine.distributed.dispatcher import NodeJob
from engine.distributed.events import follow
from engine.distributed.launch import Queued
from engine.distributed.pgq import QUEUE_SCHEMA, PgDelivery, PgQueuerDispatcher
from engine.distributed.scheduler import Scheduler, driver_connection
from engine.documents.plan import Plan
from engine.execution.events import NodeCompleted, NodeStarted, NodeToken, RunFinished, RunStarted
from engine.execution.results import NodeState
from engine.nodes.types import NodeContext, NodeType, Port
from engine.runs.service import RunService
from engine.storage.database import Database
from tests.support.documents import ROOT, workflow
from tests.support.nodes import test_registry
from tests.support.workers import LEASE_S, fan_out, live_jobs_after_draining

ONLY = {"id": "only", "type": "sleep", "params": {}}


async def live_jobs(database: Database) -> int:
    async with database.engine.connect() as connection:
        return await PgQueuerDispatcher().live_jobs(connection)


async def test_a_result_commits_only_with_the_current_attempt(
    database: Database, queued: RunService
) -> None:
    active = await queued.start(workflow([ONLY]))
    async with database.engine.connect() as connection:
        row = (await connection.execute(text(f"SELECT * FROM {QUEUE_SCHEMA}.pgqueuer"))).one()
    job = NodeJob(active.id, "only")
    delivery = PgDelivery(job, Job.model_validate(dict(row._mapping)))
    scheduler = Scheduler(database, PgQueuerDispatcher())
    try:
        await check_fencing(scheduler, job, queued.plan(workflow([ONLY])))
    finally:
        await scheduler.close()
    async with database.engine.begin() as connection:  # as the worker's consumer does
        await connection.execute(text("SELECT 1"))
        await PgQueuerDispatcher().complete(await driver_connection(connection), [delivery])
    record = await asyncio.wait_for(active.wait(), 10)
    assert record.status == "succeeded"
    assert record.nodes["only"].attempt == 2
    assert await live_jobs(database) == 0


async def check_fencing(scheduler: Scheduler, job: NodeJob, plan: Plan) -> None:
    """Only the current attempt's result commits, once."""
    assert await scheduler.take(job, "a", 0) == (1, False)
    assert await scheduler.take(job, "b", 0) is None  # a second take of the same attempt
    assert await scheduler.take(job, "b", 1) == (2, False)  # b took over after a's lease
    late = await scheduler.states(job.run_id, ["only"])
    assert late == {}
    state = NodeState(status="succeeded", output={"y": None}, digests={"y": "x"}, attempt=1)
    assert not await scheduler.settle(job, state, 1, plan=plan)
    assert await scheduler.states(job.run_id, ["only"]) == {}
    state.attempt = 2
    assert await scheduler.settle(job, state, 2, plan=plan)
    assert not await scheduler.settle(job, state, 2, plan=plan)


async def test_cancel_reaches_nodes_running_on_other_workers(
    workers: Any, database: Database, queued: RunService
) -> None:
    workers(2, "--concurrency", "4")
    nodes, edges = fan_out(6, 60.0)
    active = await queued.start(workflow(nodes, edges))
    deadline = time.monotonic() + 20
    while (await queued.get(active.id)).status != "running" and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)  # the sleeping nodes have started
    started = time.monotonic()
    record = await asyncio.wait_for(queued.cancel(active.id), 10)
    assert time.monotonic() - started < 2.5
    assert record.status == "cancelled"
    assert record.nodes["root"].status == "succeeded"
    assert {record.nodes[f"n{i}"].status for i in range(6)} == {"cancelled"}
    assert record.nodes["join"].status == record.nodes["out"].status == "cancelled"
    assert await live_jobs_after_draining(database) == 0


async def test_a_cancel_is_heard_at_once_not_at_the_next_poll(
    workers: Any, queued: RunService, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CANCEL_POLL_S", "30")  # the workers ask only every 30 s
    workers(1)
    long_node = {"id": "long", "type": "sleep", "params": {"seconds": 60}}
    active = await queued.start(workflow([long_node]))
    deadline = time.monotonic() + 20
    while (await queued.get(active.id)).status != "running" and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)  # the node has started
    started = time.monotonic()
    record = await asyncio.wait_for(queued.cancel(active.id), 20)
    assert time.monotonic() - started < 2.5  # NOTIFY, not the poll
    assert record.status == "cancelled"
    assert record.nodes["long"].status == "cancelled"


class OnlyOnTheServer(NodeType):
    type = "only_here"
    title = "Only on the server"
    params_schema: ClassVar[dict[str, Any]] = {"type": "object", "properties": {}}
    inputs = (Port("x"),)
    outputs = (Port("y"),)

    async def run(self, inputs: dict[str, Any], context: NodeContext) -> dict[str, Any]:
        return {"y": inputs["x"]}


async def test_a_node_type_the_worker_lacks_fails_that_node(
    workers: Any, database: Database, pg_url: str
) -> None:
    registry = test_registry()
    registry.register(OnlyOnTheServer)
    service = RunService(
        database, registry, launcher=Queued(database, workspace=Path("workspace"))
    )
    workers(1)
    document = workflow(
        [
            {"id": "root", "type": "sleep", "params": {"label": "R"}},
            {"id": "mystery", "type": "only_here", "params": {}},
            {"id": "side", "type": "sleep", "params": {"label": "S"}},
            {"id": "out", "type": "output", "params": {"name": "result"}},
            {"id": "other", "type": "output", "params": {"name": "side"}},
        ],
        [("root.y", "mystery.x"), ("mystery.y", "out.value"), ("side.y", "other.value")],
    )
    try:
        active = await service.start(document)
        record = await asyncio.wait_for(active.wait(), 20)
    finally:
        await service.close()
    mystery = record.nodes["mystery"]
    assert mystery.status == "failed"
    assert mystery.attempt == 1
    assert "node type 'only_here' is not installed on worker" in (mystery.error or "")
    assert record.nodes["out"].status == "skipped"
    assert record.nodes["out"].reason == "upstream failed: mystery"
    assert record.status == "failed"
    assert record.outputs == {"side": "S"}
    assert record.error == f"node mystery failed: {mystery.error}"
    events = [event async for event in follow(pg_url, active.id)]
    assert isinstance(events[0], RunStarted)
    assert isinstance(events[-1], RunFinished)
    assert [event.seq for event in events] == list(range(1, len(events) + 1))
    started = {e.node for e in events if isinstance(e, NodeStarted)}
    assert started == {"root", "mystery", "side", "other"}
    tail = [event async for event in follow(pg_url, active.id, after_seq=events[-2].seq)]
    assert tail == events[-1:]


async def test_a_rerun_on_workers_queues_only_the_nodes_it_executes(
    workers: Any, queued: RunService, pg_url: str
) -> None:
    # a -> b -> c -> out; a rerun with c's params changed takes a and b over when it is
    # queued: only c and out become jobs, and the workers never start a or b.
    workers(1)
    nodes = [
        {"id": "a", "type": "sleep", "params": {"label": "A"}},
        {"id": "b", "type": "sleep", "params": {}},
        {"id": "c", "type": "template", "params": {"template": "{{ text }}!"}},
        {"id": "out", "type": "output", "params": {"name": "result"}},
    ]
    edges = [("a.y", "b.x"), ("b.y", "c.text"), ("c.text", "out.value")]
    parent = await asyncio.wait_for((await queued.start(workflow(nodes, edges))).wait(), 20)
    assert parent.outputs == {"result": "A!"}
    active = await queued.rerun(parent.id, params={"c": {"template": "{{ text }}?"}})
    child = await asyncio.wait_for(active.wait(), 20)
    assert child.status == "succeeded", child.error
    assert child.outputs == {"result": "A?"}
    assert {node: state.status for node, state in child.nodes.items()} == {
        "a": "cached",
        "b": "cached",
        "c": "succeeded",
        "out": "succeeded",
    }
    assert child.nodes["b"].reason == f"reused from run {parent.id}"
    assert child.nodes["c"].reason == "params changed: template"
    events = [event async for event in follow(pg_url, active.id)]
    assert isinstance(events[0], RunStarted)
    assert {origin: sorted(nodes) for origin, nodes in events[0].reused.items()} == {
        parent.id: ["a", "b"]
    }
    assert {e.node for e in events if isinstance(e, NodeStarted)} == {"c", "out"}
    stored = await queued.get(child.id)
    assert stored.nodes["a"].status == "cached"
    assert stored.nodes["b"].output == parent.nodes["b"].output


async def test_tokens_of_a_node_on_a_worker_stream_while_it_runs(
    workers: Any, queued: RunService, pg_url: str
) -> None:
    workers(1)
    text = "one two three four five six"
    document = workflow(
        [
            {"id": "talk", "type": "stream", "params": {"text": text, "delay": 0.15}},
            {"id": "out", "type": "output", "params": {"name": "said"}},
        ],
        [("talk.text", "out.value")],
    )
    active = await queued.start(document)
    arrivals = [(time.monotonic(), event) async for event in follow(pg_url, active.id)]
    tokens = [(at, e) for at, e in arrivals if isinstance(e, NodeToken) and e.node == "talk"]
    assert " ".join(e.text for _, e in tokens) == text
    completed = next(at for at, e in arrivals if isinstance(e, NodeCompleted) and e.node == "talk")
    # The node runs ~0.9 s; its first words arrive while it runs, not all at its end.
    assert completed - tokens[0][0] > 0.3
    assert (await queued.get(active.id)).outputs == {"said": text}


async def test_a_worker_reconnects_after_its_connections_drop(
    workers: Any, database: Database, queued: RunService
) -> None:
    workers(1)
    nodes, edges = fan_out(3, 0.05)
    first = await queued.start(workflow(nodes, edges))
    assert (await asyncio.wait_for(first.wait(), 20)).status == "succeeded"
    async with database.engine.connect() as connection:
        await connection.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
    await asyncio.sleep(0.2)
    second = await queued.start(workflow(nodes, edges))
    assert (await asyncio.wait_for(second.wait(), 30)).status == "succeeded"


def run_worker(url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tests.support.worker", url],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("problem", "expected"),
    [
        ("unmigrated", "has no nodeloom tables, this nodeloom needs revision"),
        ("unreachable", "cannot use database postgresql+asyncpg://nodeloom@127.0.0.1:1/x"),
        ("sqlite", "nodeloom worker needs a PostgreSQL database"),
    ],
)
def test_a_worker_without_a_usable_database_says_why(
    pg_cluster: Any, problem: str, expected: str
) -> None:
    url = {
        "unmigrated": pg_cluster.create_database(),
        "unreachable": "postgresql+asyncpg://nodeloom@127.0.0.1:1/x",
        "sqlite": "sqlite:///nodeloom.db",
    }[problem]
    done = run_worker(url)
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.startswith("nodeloom: ")
    assert expected in done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert LEASE_S > 0

"""Stored runs, reruns, trees, diffs and crash recovery, on SQLite and a real PostgreSQL."""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

import pytest
from sqlalchemy import func, select

from engine.errors import Conflict, InputsInvalid, NotFound, WorkflowInvalid
from engine.execution.events import NodeCompleted, RunStarted, decode_event
from engine.runs.recent import RECENT_RUNS
from engine.runs.service import RunService
from engine.storage.database import Database
from engine.storage.tables import BlobRow, NodeResultRow, RunRow
from tests.support.documents import ROOT, workflow
from tests.support.nodes import Sleep, test_registry
from tests.support.runs import count, deleted_since

# topic -> ask -> slow (expensive) -> shout -> out ; side branch: topic -> other -> out2
NODES: list[dict[str, Any]] = [
    {
        "id": "topic",
        "type": "input",
        "params": {"name": "topic", "schema": {"type": "string"}, "default": "bees"},
    },
    {"id": "ask", "type": "template", "params": {"template": "About {{ topic }}."}},
    {"id": "slow", "type": "sleep", "params": {"seconds": 0.2}},
    {"id": "shout", "type": "template", "params": {"template": "{{ text | upper }}"}},
    {"id": "out", "type": "output", "params": {"name": "result"}},
    {"id": "other", "type": "sleep", "params": {"seconds": 0}},
    {"id": "out2", "type": "output", "params": {"name": "other"}},
]
EDGES = [
    ("topic.value", "ask.topic"),
    ("ask.text", "slow.x"),
    ("slow.y", "shout.text"),
    ("shout.text", "out.value"),
    ("topic.value", "other.x"),
    ("other.y", "out2.value"),
]


async def test_a_run_is_stored_with_every_node_and_event(service: RunService) -> None:
    record = await service.execute(workflow(NODES, EDGES), {"topic": "ants"})
    assert record.status == "succeeded"
    assert record.outputs == {"result": "ABOUT ANTS.", "other": "ants"}
    stored = await service.get(record.id)
    assert stored.status == "succeeded"
    assert stored.outputs == record.outputs
    assert stored.inputs == {"topic": "ants"}
    assert {node: state.status for node, state in stored.nodes.items()} == dict.fromkeys(
        [n["id"] for n in NODES], "succeeded"
    )
    assert stored.nodes["ask"].output == {"text": "About ants."}
    assert stored.nodes["slow"].duration_ms >= 200  # type: ignore[operator]
    assert stored.finished_at is not None
    events = [decode_event(data.encode()) for _, data in await service.store.events(record.id)]
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert events[0].__struct_config__.tag == "run.started"
    assert events[-1].__struct_config__.tag == "run.finished"


async def test_rerun_with_changed_params_reuses_everything_upstream(service: RunService) -> None:
    parent = await service.execute(workflow(NODES, EDGES))
    Sleep.executions.clear()
    child = await (
        await service.rerun(parent.id, params={"shout": {"template": "{{ text | lower }}"}})
    ).wait()
    assert child.parent_run_id == parent.id
    assert child.outputs == {"result": "about bees.", "other": "bees"}
    assert Sleep.executions == []  # the slow node did not execute again
    status = {node: (state.status, state.reason) for node, state in child.nodes.items()}
    assert status == {
        "topic": ("cached", f"reused from run {parent.id}"),
        "ask": ("cached", f"reused from run {parent.id}"),
        "slow": ("cached", f"reused from run {parent.id}"),
        "shout": ("succeeded", "params changed: template"),
        "out": ("succeeded", "upstream changed: shout"),
        "other": ("cached", f"reused from run {parent.id}"),
        "out2": ("cached", f"reused from run {parent.id}"),
    }
    stored = await service.get(child.id)
    assert {n: (s.status, s.reason) for n, s in stored.nodes.items()} == status
    assert stored.nodes["slow"].output == parent.nodes["slow"].output
    assert stored.changes == {"params": {"shout": {"template": "{{ text | lower }}"}}}
    events = [decode_event(data.encode()) for _, data in await service.store.events(child.id)]
    started = events[0]
    assert isinstance(started, RunStarted)
    assert list(started.reused) == [parent.id]
    assert sorted(started.reused[parent.id]) == ["ask", "other", "out2", "slow", "topic"]
    announced = {e.node for e in events if isinstance(e, NodeCompleted)}
    assert announced == {"shout", "out"}  # reused nodes are announced by run.started alone


async def test_rerun_from_a_node_forces_it_and_its_downstream(service: RunService) -> None:
    parent = await service.execute(workflow(NODES, EDGES))
    Sleep.executions.clear()
    child = await (await service.rerun(parent.id, from_node="slow")).wait()
    assert Sleep.executions == ["slow"]
    reasons = {node: state.reason for node, state in child.nodes.items()}
    assert reasons["slow"] == "forced: from_node"
    assert reasons["shout"] == "forced: downstream of slow"
    assert reasons["out"] == "forced: downstream of slow"
    assert child.nodes["ask"].status == "cached"
    assert child.nodes["other"].status == "cached"


async def test_a_parent_rerun_again_and_again_stays_in_memory(
    service: RunService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The memory of recent runs is least-recently-used: a parent rerun more times than it holds
    runs is still at hand, so its reruns read nothing from storage."""
    parent = await service.execute(workflow(NODES, EDGES))
    reads: list[str] = []
    real_run_row = service.store.run_row

    async def counted(run_id: str, **options: Any) -> RunRow:
        reads.append(run_id)
        return await real_run_row(run_id, **options)

    monkeypatch.setattr(service.store, "run_row", counted)
    for tag in range(RECENT_RUNS + 3):
        params = {"shout": {"template": f"{{{{ text }}}} {tag}"}}
        child = await (await service.rerun(parent.id, params=params)).wait()
        assert child.status == "succeeded"
    assert reads == []


async def test_rerun_with_new_inputs(service: RunService) -> None:
    parent = await service.execute(workflow(NODES, EDGES))
    Sleep.executions.clear()
    child = await (await service.rerun(parent.id, inputs={"topic": "wasps"})).wait()
    assert child.outputs == {"result": "ABOUT WASPS.", "other": "wasps"}
    assert sorted(Sleep.executions) == ["other", "slow"]
    assert child.nodes["topic"].reason == "input changed: topic"
    assert child.nodes["ask"].reason == "upstream changed: topic"
    assert child.inputs == {"topic": "wasps"}


async def test_reuse_is_from_the_run_that_computed_it(service: RunService) -> None:
    root = await service.execute(workflow(NODES, EDGES))
    child = await (await service.rerun(root.id, from_node="shout")).wait()
    grandchild = await (await service.rerun(child.id, from_node="out")).wait()
    assert grandchild.nodes["slow"].reason == f"reused from run {root.id}"
    assert grandchild.nodes["shout"].reason == f"reused from run {child.id}"


async def test_bad_reruns_create_nothing(service: RunService, database: Database) -> None:
    parent = await service.execute(workflow(NODES, EDGES))
    with pytest.raises(NotFound):
        await service.rerun("run_missing")
    with pytest.raises(WorkflowInvalid) as caught:
        await service.rerun(
            parent.id, from_node="ghost", params={"ask": {"temperature": 1}, "nobody": {"x": 1}}
        )
    found = {(i.code, i.node, i.path) for i in caught.value.issues}
    assert found == {
        ("missing_node", "ghost", "/from_node"),
        ("invalid_params", "ask", "/params/ask/temperature"),
        ("missing_node", "nobody", "/params/nobody"),
    }
    assert "has no param 'temperature' (its params: cache, format, retries" in str(caught.value)
    with pytest.raises(WorkflowInvalid) as caught:
        await service.rerun(parent.id, params={"slow": {"seconds": "soon"}})
    (issue,) = caught.value.issues
    assert (issue.code, issue.node, issue.path) == (
        "invalid_params",
        "slow",
        "/nodes/2/params/seconds",
    )
    with pytest.raises(InputsInvalid, match="unknown input 'nope'"):
        await service.rerun(parent.id, inputs={"nope": 1})
    assert await count(database, RunRow) == 1


async def test_rerun_of_a_run_deleted_since_is_not_found(
    service: RunService, database: Database
) -> None:
    # Storing the child is what finds the parent gone. A run stored in the same transaction is
    # not harmed.
    parent = await deleted_since(service, workflow(NODES, EDGES))
    other = asyncio.ensure_future(service.execute(workflow(NODES[:1], [])))
    with pytest.raises(NotFound, match=f"run {parent.id} not found"):
        await service.rerun(parent.id, from_node="shout")
    assert (await other).status == "succeeded"
    assert await count(database, RunRow) == 1


async def test_concurrent_reruns_of_one_parent_are_siblings(service: RunService) -> None:
    parent = await service.execute(workflow(NODES, EDGES))
    first, second = await asyncio.gather(
        service.rerun(parent.id, params={"shout": {"template": "1 {{ text }}"}}),
        service.rerun(parent.id, params={"shout": {"template": "2 {{ text }}"}}),
    )
    done = await asyncio.gather(first.wait(), second.wait())
    assert [r.outputs["result"] for r in done] == ["1 About bees.", "2 About bees."]
    tree = await service.tree(parent.id)
    assert sorted(child["id"] for child in tree["children"]) == sorted([first.id, second.id])


async def test_tree_and_branch(service: RunService) -> None:
    root = await service.execute(workflow(NODES, EDGES))
    child = await (
        await service.rerun(root.id, params={"ask": {"template": "On {{ topic }}"}})
    ).wait()
    sibling = await (await service.rerun(root.id, from_node="out")).wait()
    grandchild = await (await service.rerun(child.id, inputs={"topic": "moths"})).wait()
    tree = await service.tree(grandchild.id)
    assert tree["id"] == root.id
    assert tree["depth"] == 0
    assert [c["id"] for c in tree["children"]] == [child.id, sibling.id]
    assert tree["children"][0]["changed"] == {"params": {"ask": {"template": "On {{ topic }}"}}}
    assert tree["children"][1]["from_node"] == "out"
    (leaf,) = tree["children"][0]["children"]
    assert (leaf["id"], leaf["depth"], leaf["children"]) == (grandchild.id, 2, [])
    assert await service.branch(grandchild.id) == [root.id, child.id, grandchild.id]


async def test_diff_between_two_runs(service: RunService) -> None:
    root = await service.execute(workflow(NODES, EDGES))
    child = await (
        await service.rerun(root.id, params={"shout": {"template": "{{ text }}!"}})
    ).wait()
    diff = await service.diff(root.id, child.id)
    by_node = {entry["node"]: entry for entry in diff["nodes"]}
    assert by_node["shout"]["params_changed"] == ["template"]
    assert by_node["shout"]["output"] == "changed"
    assert by_node["ask"]["output"] == "equal"
    assert by_node["ask"]["params_changed"] == []
    assert by_node["shout"]["status"] == ["succeeded", "succeeded"]
    assert by_node["slow"]["status"] == ["succeeded", "cached"]
    assert diff["inputs_changed"] == []
    other = await service.execute(workflow(NODES, EDGES))
    with pytest.raises(Conflict, match="different workflows"):
        await service.diff(root.id, other.id)


async def test_large_outputs_and_documents_are_stored_once(
    service: RunService, database: Database
) -> None:
    big = "x" * 1_000_000
    nodes = [
        {"id": "big", "type": "sleep", "params": {"label": big}},
        {"id": "size", "type": "template", "params": {"template": "{{ t | length }}"}},
    ]
    parent = await service.execute(workflow(nodes, [("big.y", "size.t")]))
    children = [
        (await (await service.rerun(parent.id, from_node="size")).wait()).id for _ in range(5)
    ]
    same_bytes = await service.execute(workflow(nodes, [("big.y", "size.t")]))  # not a rerun
    # The output, and the document (which holds the same megabyte) that all 7 runs ran.
    assert await count(database, BlobRow) == 2
    async with database.engine.connect() as connection:
        rows = await connection.scalar(select(func.count()).where(NodeResultRow.node_id == "big"))
    assert rows == 2  # the parent's and the unrelated run's; reruns refer to the parent's
    for run_id in [parent.id, *children, same_bytes.id]:
        state = (await service.get(run_id)).nodes["big"]
        assert state.output == {"y": big}
    assert (await service.get(children[-1])).nodes["big"].reason == f"reused from run {parent.id}"


async def test_cancel_a_stored_run(service: RunService) -> None:
    nodes = [{"id": "long", "type": "sleep", "params": {"seconds": 30}}]
    active = await service.start(workflow(nodes))
    await asyncio.sleep(0.1)
    record = await service.cancel(active.id)
    assert record.status == "cancelled"
    assert (await service.get(active.id)).nodes["long"].status == "cancelled"
    with pytest.raises(Conflict, match="already finished"):
        await service.cancel(active.id)


async def test_sigkill_mid_run_then_resume_loses_and_repeats_nothing(
    database_url: str, service: RunService, database: Database
) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.support.crash_run",
        database_url,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    run_id = (await process.stdout.readline()).decode().strip()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # wait until a, b and side are committed and slow runs
        states = await service.store.node_states(run_id)
        if {"a", "b", "side"} <= {n for n, s in states.items() if s.status == "succeeded"}:
            break
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.1)
    process.kill()  # SIGKILL
    await process.wait()
    before = await service.store.node_states(run_id)
    assert (await service.store.run_row(run_id)).status == "running"
    assert "slow" not in before

    assert await service.recover() == [run_id]
    assert (await service.get(run_id)).status == "interrupted"
    Sleep.executions.clear()
    record = await (await service.resume(run_id)).wait()
    assert record.status == "succeeded"
    assert record.outputs == {"result": ["A", "S"]}
    assert Sleep.executions == ["slow"]  # nothing committed ran again
    after = await service.store.node_states(run_id)
    for node, state in before.items():  # committed results untouched
        assert after[node].finished_at == state.finished_at
        assert after[node].output == state.output
    events = await service.store.events(run_id)
    seqs = [seq for seq, _ in events]
    assert seqs == sorted(set(seqs))
    assert await count(database, NodeResultRow) == 6
    with pytest.raises(Conflict, match="only an interrupted run"):
        await service.resume(run_id)


async def test_rerun_in_another_process_reads_what_it_needs_from_storage(
    service: RunService, database: Database
) -> None:
    parent = await service.execute(workflow(NODES, EDGES))
    in_memory = await (
        await service.rerun(parent.id, params={"shout": {"template": "{{ text }}?"}})
    ).wait()
    fresh = RunService(database, test_registry())  # knows nothing of the parent but its rows
    try:
        Sleep.executions.clear()
        stored = await (
            await fresh.rerun(parent.id, params={"shout": {"template": "{{ text }}?"}})
        ).wait()
    finally:
        await fresh.close()
    assert Sleep.executions == []
    assert stored.outputs == in_memory.outputs
    summary = {n: (s.status, s.reason, s.cache_key) for n, s in stored.nodes.items()}
    assert summary == {n: (s.status, s.reason, s.cache_key) for n, s in in_memory.nodes.items()}


async def test_rerun_that_changes_a_nodes_ports_is_validated_whole(service: RunService) -> None:
    parent = await service.execute(workflow(NODES, EDGES))
    with pytest.raises(WorkflowInvalid) as caught:
        await service.rerun(parent.id, params={"shout": {"template": "{{ nothing_feeds_this }}"}})
    codes = {(issue.code, issue.node, issue.port) for issue in caught.value.issues}
    assert codes == {
        ("missing_input", "shout", "nothing_feeds_this"),
        ("unknown_port", "shout", "text"),
    }
    with pytest.raises(WorkflowInvalid) as caught:
        await service.rerun(parent.id, params={"shout": {"template": "{% if %}"}})
    assert [issue.code for issue in caught.value.issues] == ["template_syntax"]

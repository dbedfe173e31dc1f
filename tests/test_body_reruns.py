"""Reruns and resumes of runs with bodies (SPEC §12): a changed item executes its own nodes,
a node inside a body is changed for every item, a loop given more iterations reuses those it
had, and a resumed run keeps what its items committed. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from engine.errors import WorkflowInvalid
from engine.runs.service import RunService
from engine.storage.database import Database
from tests.support.bodies import (
    SHOUT,
    looped,
    mapped,
    mapped_nodes,
)
from tests.support.documents import workflow
from tests.support.nodes import Sleep, test_registry


async def test_a_rerun_with_one_item_changed_executes_that_item_alone(
    service: RunService, database: Database
) -> None:
    parent = await service.execute(mapped(), {"words": ["a", "b", "c"]})
    Sleep.executions.clear()
    child = await (await service.rerun(parent.id, inputs={"words": ["a", "B", "c"]})).wait()
    assert child.outputs["loud"] == ["A!", "B!", "C!"]
    assert Sleep.executions == ["m[1]/wait"]
    assert child.nodes["m[1]/word"].reason_code == "input_changed"
    assert child.nodes["m[1]/wait"].reason_code == "upstream_changed"
    assert child.nodes["m[0]/up"].reason_code == "reused"
    assert child.nodes["m[2]/wait"].reason == f"reused from run {parent.id}"
    stored = await RunService(database, test_registry()).get(child.id)
    assert stored.nodes["m[1]/up"].status == "succeeded"
    assert stored.nodes["m[1]/up"].output == {"text": "B!"}
    assert stored.nodes["m[0]/up"].reason == f"reused from run {parent.id}"
    # A rerun elsewhere (only what is stored) with nothing changed takes the map over whole,
    # its inner nodes with it.
    Sleep.executions.clear()
    fresh = RunService(database, test_registry())
    try:
        grandchild = await (await fresh.rerun(child.id, params={"loud": {}})).wait()
    finally:
        await fresh.close()
    assert Sleep.executions == []
    assert grandchild.nodes["m"].reason_code == "reused"
    assert grandchild.nodes["m[1]/up"].reason == f"reused from run {child.id}"
    assert grandchild.nodes["m[0]/up"].reason == f"reused from run {parent.id}"
    stored = await service.get(grandchild.id)
    assert stored.nodes["m[1]/up"].output == {"text": "B!"}


async def test_a_rerun_from_a_map_executes_every_item_again(service: RunService) -> None:
    parent = await service.execute(mapped(), {"words": ["a", "b"]})
    Sleep.executions.clear()
    child = await (await service.rerun(parent.id, from_node="m")).wait()
    assert sorted(Sleep.executions) == ["m[0]/wait", "m[1]/wait"]
    assert child.nodes["m[0]/wait"].reason_code == "forced"


async def test_a_longer_loop_reuses_the_iterations_it_had(service: RunService) -> None:
    parent = await service.execute(looped(max_iterations=6))
    assert parent.outputs["times"] == 6
    Sleep.executions.clear()
    child = await (await service.rerun(parent.id, params={"lp": {"max_iterations": 10}})).wait()
    assert child.outputs == {"text": "b" + "a" * 10, "times": 10}
    assert Sleep.executions == [f"lp#{i}/more" for i in range(7, 11)]
    assert all(child.nodes[f"lp#{i}/more"].reason_code == "reused" for i in range(1, 7))


async def test_a_rerun_changes_a_node_inside_a_body_for_every_item(
    service: RunService, database: Database
) -> None:
    parent = await service.execute(mapped(), {"words": ["a", "b"]})
    Sleep.executions.clear()
    asking = {"m/up": {"template": "{{ w.upper() }}{{ suffix }}?"}}
    child = await (await service.rerun(parent.id, params=asking)).wait()
    assert child.status == "succeeded", child.error
    assert child.outputs["loud"] == ["A!?", "B!?"]
    assert Sleep.executions == []  # upstream of the changed node: reused, item by item
    assert child.nodes["m"].reason == "body changed: up"
    assert child.nodes["m[1]/up"].reason == "params changed: template"
    assert child.nodes["m[1]/wait"].reason_code == "reused"
    # The child's document is one that runs as it did: the map runs a copy of its body.
    document = await service.store.snapshot(await service.row(child.id))
    (m,) = [node for node in document["nodes"] if node["id"] == "m"]
    assert m["params"]["graph"] == "shout--m"
    assert document["subgraphs"]["shout"] == SHOUT | {"edges": SHOUT["edges"]}
    assert document["subgraphs"]["shout--m"]["nodes"][3]["params"]["template"].endswith("?")
    # Its rerun, elsewhere, changes that copy again rather than copying it once more.
    fresh = RunService(database, test_registry())
    try:
        again = {"m/suffix": {"default": "."}}
        grandchild = await (await fresh.rerun(child.id, params=again)).wait()
    finally:
        await fresh.close()
    assert grandchild.outputs["loud"] == ["A.?", "B.?"]
    document = await service.store.snapshot(await service.row(grandchild.id))
    assert sorted(document["subgraphs"]) == ["shout", "shout--m"]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"m/nothing": {"template": "x"}}, "the body of 'm' ('shout') has no node 'nothing'"),
        ({"m/up": {"bogus": 1}}, "template node 'm/up' has no param 'bogus'"),
        ({"words/up": {"template": "x"}}, "node 'words' runs no body, so 'words/up' names no node"),
        ({"ghost/up": {"template": "x"}}, "node 'ghost' is not in run"),
    ],
)
async def test_bad_params_for_nodes_inside_bodies_are_named(
    service: RunService, params: dict[str, Any], message: str
) -> None:
    parent = await service.execute(mapped(), {"words": ["a"]})
    with pytest.raises(WorkflowInvalid) as raised:
        await service.rerun(parent.id, params=params)
    (issue,) = raised.value.issues
    assert message in issue.message


async def test_a_map_given_new_params_takes_over_the_items_whose_keys_stand(
    service: RunService, database: Database
) -> None:
    parent = await service.execute(mapped(), {"words": ["a", "b"]})
    Sleep.executions.clear()
    child = await (await service.rerun(parent.id, params={"m": {"on_item_error": "null"}})).wait()
    assert child.nodes["m"].reason == "params changed: on_item_error"
    assert Sleep.executions == []
    assert child.outputs["loud"] == ["A!", "B!"]
    stored = await RunService(database, test_registry()).get(child.id)
    assert stored.nodes["m[1]/wait"].reason == f"reused from run {parent.id}"
    assert stored.nodes["m"].progress == {"done": 2, "failed": 0, "total": 2}


async def test_a_resumed_run_keeps_the_items_its_map_finished(
    database: Database, tmp_path: Any
) -> None:
    slow = {**SHOUT, "nodes": [dict(node) for node in SHOUT["nodes"]]}
    slow["nodes"][2] = {"id": "wait", "type": "sleep", "params": {"seconds": 0.15}}
    document = workflow(
        mapped_nodes(concurrency=1),
        [(edge.source, edge.target) for edge in mapped().edges],
        subgraphs={"shout": slow},
    )
    first = RunService(database, test_registry(), workspace=tmp_path, lease_timeout_s=2)
    handle = await first.start(document, {"words": ["a", "b", "c", "d"]})
    deadline = time.monotonic() + 10
    # Two items done, the third under way (what the sleeps record is a list, not an event).
    while len(Sleep.executions) < 3 and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    await first.close()  # the process stops: the run is left interrupted
    assert (await first.get(handle.id)).status == "interrupted"
    Sleep.executions.clear()
    again = RunService(database, test_registry(), workspace=tmp_path, lease_timeout_s=2)
    try:
        resumed = await (await again.resume(handle.id)).wait()
    finally:
        await again.close()
    assert resumed.status == "succeeded", resumed.error
    assert resumed.outputs["loud"] == ["A!", "B!", "C!", "D!"]
    assert Sleep.executions == ["m[2]/wait", "m[3]/wait"]  # the first two stood
    assert resumed.nodes["m"].progress == {"done": 4, "failed": 0, "total": 4}

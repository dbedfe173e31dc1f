"""Saved workflows as bodies (SPEC §12): the version a run ran is copied into its document, a
saved workflow the caller may not see is unknown, one that runs itself is refused naming the
chain, and reruns change its version or its nodes. On SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from engine.errors import WorkflowInvalid
from engine.runs.service import RunService
from engine.storage.database import Database
from engine.storage.tables import RunRow
from tests.support.bodies import (
    SHOUT,
    SHOUT_DOCUMENT,
    mapped,
    terse,
)
from tests.support.documents import workflow
from tests.support.nodes import Sleep, test_registry
from tests.support.runs import count


async def test_a_map_runs_a_saved_workflow_at_its_current_version_recorded(
    service: RunService,
) -> None:
    store = service.store
    saved = await store.create_workflow(workflow(**terse(SHOUT_DOCUMENT)))
    caller = mapped()
    caller.nodes[1].params = {"workflow": saved.id}
    first = await service.execute(caller, {"words": ["a"]})
    assert first.status == "succeeded", first.error
    assert first.outputs["loud"] == ["A!"]
    document = await store.snapshot(await service.row(first.id))
    assert document["nodes"][1]["params"] == {"workflow": saved.id, "version": 1}
    assert document["subgraphs"][f"{saved.id}@1"]["nodes"] == SHOUT["nodes"]
    # A new version is what the next run runs; a node naming a version keeps to it.
    quieter = [dict(node) for node in SHOUT["nodes"]]
    quieter[1] = {**quieter[1], "params": {"name": "suffix", "default": "."}}
    newer = {**SHOUT_DOCUMENT, "nodes": quieter}
    await store.save_workflow(saved.id, workflow(**terse(newer)), expected_version=1)
    second = await service.execute(caller, {"words": ["a"]})
    assert second.outputs["loud"] == ["A."]
    caller.nodes[1].params = {"workflow": saved.id, "version": 1}
    pinned = await service.execute(caller, {"words": ["a"]})
    assert pinned.outputs["loud"] == ["A!"]


async def test_a_saved_workflow_that_cannot_be_seen_is_unknown(service: RunService) -> None:
    saved = await service.store.create_workflow(workflow(**terse(SHOUT_DOCUMENT)), owner_id="ada")
    caller = mapped()
    caller.nodes[1].params = {"workflow": saved.id}
    with pytest.raises(WorkflowInvalid) as raised:
        await service.start(caller, {"words": ["a"]}, owner_id="bob")
    (issue,) = raised.value.issues
    assert (issue.code, issue.node, issue.path) == (
        "unknown_workflow",
        "m",
        "/nodes/1/params/workflow",
    )
    assert issue.message == f"workflow {saved.id!r} is not a saved workflow this document can use"
    assert await count(service.store.database, RunRow) == 0  # nothing stored


async def test_a_saved_workflow_that_runs_itself_is_refused_naming_the_chain(
    service: RunService,
) -> None:
    store = service.store
    b = await store.create_workflow(workflow(**terse(SHOUT_DOCUMENT)))
    a_document = mapped()
    a_document.nodes[1].params = {"workflow": b.id}
    a = await store.create_workflow(a_document)
    # b, saved again to run a, would contain itself through it.
    b_again = mapped()
    b_again.nodes[1].params = {"workflow": a.id}
    with pytest.raises(WorkflowInvalid) as raised:
        await service.with_saved_bodies(b_again, owner_id=None, workflow_id=b.id)
    (issue,) = raised.value.issues
    assert issue.code == "recursive_workflow"
    assert issue.message == f"workflow {b.id} contains itself: {b.id} → {a.id} → {b.id}"


async def test_a_rerun_given_a_new_version_of_a_saved_body_reuses_what_did_not_change(
    service: RunService, database: Database
) -> None:
    store = service.store
    saved = await store.create_workflow(workflow(**terse(SHOUT_DOCUMENT)))
    caller = mapped()
    caller.nodes[1].params = {"workflow": saved.id}
    parent = await service.execute(caller, {"words": ["a", "b"]})
    quieter = [dict(node) for node in SHOUT["nodes"]]
    quieter[1] = {**quieter[1], "params": {"name": "suffix", "default": "."}}
    await store.save_workflow(
        saved.id, workflow(**terse({**SHOUT_DOCUMENT, "nodes": quieter})), expected_version=1
    )
    Sleep.executions.clear()
    child = await (await service.rerun(parent.id, params={"m": {"version": 2}})).wait()
    assert child.status == "succeeded", child.error
    assert child.outputs["loud"] == ["A.", "B."]
    assert child.nodes["m"].reason == "params changed: version"
    assert Sleep.executions == []  # upstream of the changed input, item by item
    assert child.nodes["m[1]/suffix"].reason == "input changed: suffix"  # its default, now "."
    document = await store.snapshot(await service.row(child.id))
    assert document["nodes"][1]["params"] == {"workflow": saved.id, "version": 2}
    assert f"{saved.id}@2" in document["subgraphs"]
    # Its own rerun, elsewhere, runs the same version.
    fresh = RunService(database, test_registry())
    try:
        again = await (await fresh.rerun(child.id, params={"loud": {}})).wait()
    finally:
        await fresh.close()
    assert again.outputs["loud"] == ["A.", "B."]
    assert again.nodes["m"].reason_code == "reused"


async def test_a_node_inside_a_saved_body_changed_by_a_rerun_runs_a_copy_of_its_own(
    service: RunService,
) -> None:
    saved = await service.store.create_workflow(workflow(**terse(SHOUT_DOCUMENT)))
    caller = mapped()
    caller.nodes[1].params = {"workflow": saved.id}
    parent = await service.execute(caller, {"words": ["a", "b"]})
    Sleep.executions.clear()
    asking = {"m/up": {"template": "{{ w.upper() }}{{ suffix }}?"}}
    child = await (await service.rerun(parent.id, params=asking)).wait()
    assert child.status == "succeeded", child.error
    assert child.outputs["loud"] == ["A!?", "B!?"]
    assert Sleep.executions == []
    document = await service.store.snapshot(await service.row(child.id))
    own = f"{saved.id}_1--m"
    assert document["nodes"][1]["params"] == {"graph": own}
    assert document["subgraphs"][own]["nodes"][3]["params"]["template"].endswith("?")

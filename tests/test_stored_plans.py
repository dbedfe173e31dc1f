"""A document's compiled plan is stored once and read back by a process that did not compile
it, the plans of its bodies too; a plan stored under other node types is not used. Reasons are
stored as codes beside their words. On SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from sqlalchemy import delete

import engine.runs.service as service_module
from engine.documents.graph import compile_plan
from engine.documents.plan import Plan
from engine.documents.stored import decode_plan, encode_plan, plan_key
from engine.errors import NotFound
from engine.runs.service import RunService
from engine.storage.database import Database
from engine.storage.tables import BlobRow, CompiledPlanRow, RunRow
from tests.support.bodies import mapped, nested
from tests.support.documents import workflow
from tests.support.nodes import Sleep, test_registry
from tests.support.runs import count

NODES: list[dict[str, Any]] = [
    {"id": "topic", "type": "input", "params": {"name": "topic", "default": "bees"}},
    {"id": "ask", "type": "template", "params": {"template": "About {{ topic }}."}},
    {"id": "slow", "type": "sleep", "params": {"seconds": 0}},
    {"id": "shout", "type": "template", "params": {"template": "{{ text | upper }}"}},
    {"id": "out", "type": "output", "params": {"name": "result"}},
]
EDGES = [
    ("topic.value", "ask.topic"),
    ("ask.text", "slow.x"),
    ("slow.y", "shout.text"),
    ("shout.text", "out.value"),
]


async def rerun_elsewhere(
    database: Database, run_id: str, params: dict[str, dict[str, Any]], registry: Any = None
) -> Any:
    """A rerun by a run service that knows nothing of the parent but what is stored."""
    fresh = RunService(database, registry or test_registry())
    try:
        return await (await fresh.rerun(run_id, params=params)).wait()
    finally:
        await fresh.close()


def no_compiling(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the document was compiled again")

    monkeypatch.setattr(service_module, "compile_plan", refuse)


async def test_a_rerun_elsewhere_reads_the_stored_plan_instead_of_compiling(
    service: RunService, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    parent = await service.execute(workflow(NODES, EDGES))
    await service.close()  # its plan is stored by now
    assert await count(database, CompiledPlanRow) == 1
    no_compiling(monkeypatch)
    Sleep.executions.clear()
    child = await rerun_elsewhere(database, parent.id, {"shout": {"template": "{{ text }}!"}})
    # A rerun of the child: its overrides are analysed again on the stored plan.
    grandchild = await rerun_elsewhere(database, child.id, {"ask": {"template": "On {{ topic }}."}})
    assert child.outputs == {"result": "About bees.!"}
    assert child.nodes["shout"].reason_code == "params_changed"
    assert child.nodes["slow"].reason_code == "reused"
    assert Sleep.executions == ["slow"]  # in the grandchild only: its input changed
    assert grandchild.outputs == {"result": "On bees.!"}
    assert grandchild.nodes["slow"].reason == "upstream changed: ask"
    assert grandchild.nodes["slow"].reason_code == "upstream_changed"


def shape(plan: Plan) -> list[Any]:
    """What running a plan depends on, its bodies' plans within."""
    return [
        (node.id, node.index, node.node_type, node.params, node.settings, node.inputs,
         node.outputs, node.sources, node.successors, node.predecessors, node.key_material,
         None if node.body is None else (node.body.workflow.name, shape(node.body)))
        for node in plan.nodes.values()
    ]  # fmt: skip


def test_the_plans_of_bodies_are_stored_with_their_document() -> None:
    registry = test_registry()
    document = nested()  # a map of a body that runs a subgraph
    compiled = compile_plan(document, registry)
    decoded = decode_plan(encode_plan(compiled), document, registry)
    assert decoded is not None
    assert shape(decoded) == shape(compiled)
    outer = decoded.nodes["m"].body
    assert outer is not None
    assert outer.workflow.subgraphs == document.subgraphs
    # A stored plan that does not fit the document is not used: it is compiled instead.
    assert decode_plan(encode_plan(compiled), mapped(), registry) is None
    body_less = msgspec.structs.replace(document, subgraphs={"outer": document.subgraphs["outer"]})
    assert decode_plan(encode_plan(compiled), body_less, registry) is None


async def test_a_map_is_rerun_elsewhere_from_its_stored_plan(
    service: RunService, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    parent = await service.execute(mapped(), {"words": ["a", "b", "c"]})
    await service.close()
    no_compiling(monkeypatch)
    fresh = RunService(database, test_registry())
    try:
        child = await (await fresh.rerun(parent.id, inputs={"words": ["a", "x", "c"]})).wait()
    finally:
        await fresh.close()
    assert child.outputs["loud"] == ["A!", "X!", "C!"]
    assert child.nodes["m[0]/up"].reason_code == "reused"
    assert child.nodes["m[1]/up"].status == "succeeded"


async def test_a_plan_stored_under_other_node_types_is_not_used(
    service: RunService, database: Database
) -> None:
    parent = await service.execute(workflow(NODES, EDGES))
    await service.close()
    row = await service.store.run_row(parent.id)
    registry = test_registry()
    registry.register(type("Extra", (Sleep,), {"type": "extra", "title": "Extra"}))
    assert plan_key(row.snapshot_blob, registry) != plan_key(row.snapshot_blob, test_registry())
    changed = {"shout": {"template": "{{ text }}!"}}
    child = await rerun_elsewhere(database, parent.id, changed, registry)
    assert child.status == "succeeded"
    assert await count(database, CompiledPlanRow) == 2  # compiled under its own types, stored


async def test_reason_codes_are_stored_with_their_words(
    service: RunService, database: Database
) -> None:
    nodes = [*NODES, {"id": "never", "type": "sleep", "params": {"seconds": 0, "cache": "never"}}]
    parent = await service.execute(workflow(nodes, [*EDGES, ("ask.text", "never.x")]))
    child = await (await service.rerun(parent.id, from_node="shout")).wait()
    stored = await RunService(database, test_registry()).get(child.id)
    codes = {node: (state.reason_code, state.reason) for node, state in stored.nodes.items()}
    assert codes["shout"] == ("forced", "forced: from_node")
    assert codes["out"] == ("forced_downstream", "forced: downstream of shout")
    assert codes["never"] == ("cache_never", "cache: never")
    assert codes["ask"] == ("reused", f"reused from run {parent.id}")


async def test_a_parent_read_from_the_database_is_checked_like_one_in_memory(
    service: RunService, database: Database
) -> None:
    parent = await service.execute(workflow(NODES, EDGES), owner_id="ada")
    await service.close()
    fresh = RunService(database, test_registry())
    changed = {"shout": {"template": "{{ text }}!"}}
    try:
        with pytest.raises(NotFound, match=f"run {parent.id} not found"):
            await fresh.rerun(parent.id, params=changed, owner_id="bob")
        with pytest.raises(NotFound, match="run run_nothing not found"):
            await fresh.rerun("run_nothing", params=changed)
        child = await (await fresh.rerun(parent.id, params=changed, owner_id="ada")).wait()
        assert (await fresh.row(child.id)).owner_id == "ada"
        assert child.inputs == parent.inputs
        assert child.root_run_id == parent.id
        assert child.nodes["slow"].reason_code == "reused"
        # Without its document, a run cannot be rerun: a clear error, nothing stored.
        async with database.engine.begin() as connection:
            await connection.execute(delete(BlobRow))
        other = RunService(database, test_registry())
        try:
            with pytest.raises(NotFound, match=f"the document of run {parent.id} is not stored"):
                await other.rerun(parent.id, params=changed)
        finally:
            await other.close()
        assert await count(database, RunRow) == 2
    finally:
        await fresh.close()

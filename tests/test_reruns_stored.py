"""A rerun whose parent is read from the database (by a new run service: as `nodeloom rerun`
or a restarted server finds it) holds every result it takes over, output and all, as a rerun
of the same parent in memory does, its own results and those its parent took over by
reference alike; the plan `nodeloom rerun` shows is read once for the rerun that follows. On
SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest

import engine.runs.service as service_module
from engine.records import RunRecord
from engine.runs.service import RunService
from engine.storage.database import Database
from tests.support.documents import workflow
from tests.support.nodes import test_registry

NODES: list[dict[str, Any]] = [
    {"id": "topic", "type": "input", "params": {"name": "topic", "default": "bees"}},
    {"id": "ask", "type": "template", "params": {"template": "About {{ topic }}."}},
    {"id": "shout", "type": "template", "params": {"template": "{{ text | upper }}"}},
    {"id": "other", "type": "template", "params": {"template": "{{ text }}?"}},
    {"id": "out", "type": "output", "params": {"name": "result"}},
    {"id": "side", "type": "output", "params": {"name": "side"}},
]
EDGES = [
    ("topic.value", "ask.topic"),
    ("ask.text", "shout.text"),
    ("ask.text", "other.text"),
    ("shout.text", "out.value"),
    ("other.text", "side.value"),
]
SHOUT = {"shout": {"template": "{{ text }}!"}}
OTHER = {"other": {"template": "{{ text }}??"}}


def seen(record: RunRecord) -> dict[str, tuple[Any, ...]]:
    """What a run shows of each node, but its timings."""
    return {
        node_id: (state.status, state.reason, state.reason_code, state.cache_key, state.output)
        for node_id, state in record.nodes.items()
    }


async def test_a_parent_read_from_the_database_gives_its_child_every_output_it_takes_over(
    service: RunService, database: Database
) -> None:
    parent = await service.execute(workflow(NODES, EDGES))
    # The child takes topic, ask and other over from the parent by reference.
    child = await (await service.rerun(parent.id, params=SHOUT)).wait()
    in_memory = await (await service.rerun(child.id, params=OTHER)).wait()
    await service.close()
    fresh = RunService(database, test_registry())
    try:
        grandchild = await (await fresh.rerun(child.id, params=OTHER)).wait()
    finally:
        await fresh.close()
    assert seen(grandchild) == seen(in_memory)
    taken = {n for n, state in grandchild.nodes.items() if state.reason_code == "reused"}
    assert taken == {"topic", "ask", "shout", "out"}
    origins = {n: grandchild.nodes[n].reason for n in taken}
    assert origins == {
        "topic": f"reused from run {parent.id}",
        "ask": f"reused from run {parent.id}",
        "shout": f"reused from run {child.id}",
        "out": f"reused from run {child.id}",
    }
    assert grandchild.nodes["ask"].output == {"text": "About bees."}
    assert grandchild.nodes["shout"].output == {"text": "About bees.!"}
    assert grandchild.outputs == {"result": "About bees.!", "side": "About bees.??"}
    # As stored, read by yet another service.
    other = RunService(database, test_registry())
    try:
        assert seen(await other.get(grandchild.id)) == seen(grandchild)
    finally:
        await other.close()


async def test_the_plan_shown_before_a_rerun_is_the_one_the_rerun_plans_from(
    service: RunService, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    parent = await service.execute(workflow(NODES, EDGES))
    child = await (await service.rerun(parent.id, params=SHOUT)).wait()
    await service.close()  # the plan of its document is stored by now
    decoded: list[object] = []
    decode = service_module.decode_plan

    def counted(*args: Any) -> Any:
        decoded.append(args)
        return decode(*args)

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the document was compiled again")

    monkeypatch.setattr(service_module, "decode_plan", counted)
    monkeypatch.setattr(service_module, "compile_plan", refuse)
    fresh = RunService(database, test_registry())
    try:
        plan = await fresh.run_plan(child.id)
        assert list(plan.nodes) == ["topic", "ask", "shout", "other", "out", "side"]
        assert plan.nodes["shout"].params == SHOUT["shout"]  # the child's override
        grandchild = await (await fresh.rerun(child.id, params=OTHER)).wait()
        assert len(decoded) == 1
        assert grandchild.outputs == {"result": "About bees.!", "side": "About bees.??"}
        assert grandchild.nodes["shout"].reason == f"reused from run {child.id}"
    finally:
        await fresh.close()

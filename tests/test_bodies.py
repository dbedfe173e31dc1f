"""Bodies (SPEC §12): `subgraph`, `map` and `loop` run a body of the document; its nodes are
the run's nodes by path, settled, stored and announced like any other; validation reaches into
bodies. On SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest

from engine.documents.graph import compile_plan
from engine.errors import WorkflowInvalid
from engine.execution.events import AnyEvent, NodeCompleted
from engine.runs.service import RunService
from engine.storage.database import Database
from tests.support.bodies import (
    GROW,
    SHOUT,
    SHOUT_IDS,
    body,
    looped,
    mapped,
    mapped_nodes,
    nested,
)
from tests.support.documents import workflow
from tests.support.nodes import Sleep, test_registry


async def test_a_map_runs_its_body_once_per_item_its_nodes_stored_by_path(
    service: RunService, database: Database
) -> None:
    events: list[AnyEvent] = []
    handle = await service.start(
        mapped(concurrency=2), {"words": ["a", "bee", "sea"]}, listeners=[events.append]
    )
    run = await handle.wait()
    assert run.status == "succeeded", run.error
    assert run.outputs == {"loud": ["A!", "BEE!", "SEA!"], "errors": []}
    assert run.nodes["m"].progress == {"done": 3, "failed": 0, "total": 3}
    assert run.nodes["m[1]/up"].output == {"text": "BEE!"}
    assert run.nodes["m[2]/word"].output == {"value": "sea"}
    assert {f"m[{i}]/{n}" for i in range(3) for n in SHOUT_IDS} <= run.nodes.keys()
    # No more than `concurrency` items at once.
    spans = [Sleep.spans[f"m[{i}]/wait"] for i in range(3)]
    at_once = max(sum(1 for start, end in spans if start <= moment < end) for moment, _ in spans)
    assert at_once == 2
    # Events name inner nodes by path; the map completes after its items.
    completed = [event.node for event in events if isinstance(event, NodeCompleted)]
    assert "m[0]/up" in completed
    assert completed.index("m") > max(completed.index(f"m[{i}]/out") for i in range(3))
    # Stored: read back by another service, inner nodes and progress included.
    stored = await RunService(database, test_registry()).get(run.id)
    assert stored.nodes["m[2]/up"].output == {"text": "SEA!"}
    assert stored.nodes["m"].progress == {"done": 3, "failed": 0, "total": 3}


@pytest.mark.parametrize(
    ("on_item_error", "status", "loud"),
    [("skip", "succeeded", ["A!", "C!"]), ("null", "succeeded", ["A!", None, "C!"])],
)
async def test_an_item_that_fails_is_left_out_or_null_as_the_map_says(
    service: RunService, on_item_error: str, status: str, loud: list[Any]
) -> None:
    # A number has no `upper`: the item's template node fails.
    run = await service.execute(mapped(on_item_error=on_item_error), {"words": ["a", 7, "c"]})
    assert run.status == status, run.error
    assert run.outputs["loud"] == loud
    (error,) = run.outputs["errors"]
    assert error["index"] == 1
    assert error["error"].startswith("m[1]/")
    assert run.nodes["m"].progress == {"done": 3, "failed": 1, "total": 3}


async def test_an_item_that_fails_fails_the_map_by_default_naming_it(service: RunService) -> None:
    run = await service.execute(mapped(concurrency=1), {"words": ["a", 7, "c", "d"]})
    assert run.status == "failed"
    assert run.nodes["m"].status == "failed"
    assert run.nodes["m"].error is not None
    assert run.nodes["m"].error.startswith("item 1: m[1]/")
    assert run.error == f"node m failed: {run.nodes['m'].error}"
    assert "m[3]/word" not in run.nodes  # no item starts after the failure
    assert run.nodes["loud"].status == "skipped"


async def test_items_that_are_not_an_array_or_too_many_fail_the_map(
    database: Database, tmp_path: Any
) -> None:
    service = RunService(database, test_registry(), workspace=tmp_path, max_items=3)
    try:
        run = await service.execute(mapped(), {"words": ["a", "b", "c", "d"]})
        assert run.nodes["m"].error == (
            "4 items, more than the 3 a body may run (NODELOOM_MAP_MAX_ITEMS)"
        )
        nodes = [
            {"id": "o", "type": "input", "params": {"name": "o"}},  # of any type
            {"id": "m", "type": "map", "params": {"graph": "shout", "over": "word"}},
            {"id": "loud", "type": "output", "params": {"name": "loud"}},
        ]
        not_array = workflow(
            nodes, [("o.value", "m.items"), ("m.loud", "loud.value")], subgraphs={"shout": SHOUT}
        )
        run = await service.execute(not_array, {"o": "x"})
        assert run.nodes["m"].error == "items: expected an array, got string"
        assert not [node for node in run.nodes if node.startswith("m[")]
    finally:
        await service.close()


async def test_a_map_over_no_items_answers_empty_arrays(service: RunService) -> None:
    run = await service.execute(mapped(), {"words": []})
    assert run.status == "succeeded"
    assert run.outputs == {"loud": [], "errors": []}


async def test_a_loop_runs_until_its_condition_carrying_values(service: RunService) -> None:
    run = await service.execute(looped(max_iterations=10, until="size | int >= 4"))
    assert run.status == "succeeded", run.error
    assert run.outputs == {"text": "baaa", "times": 3}
    assert [run.nodes[f"lp#{i}/add"].output for i in (1, 2, 3)] == [
        {"text": "ba"},
        {"text": "baa"},
        {"text": "baaa"},
    ]
    assert "lp#4/add" not in run.nodes
    assert run.nodes["lp"].progress == {"done": 3, "failed": 0, "total": 3}
    capped = await service.execute(looped(max_iterations=2, until="size | int >= 40"))
    assert capped.outputs == {"text": "baa", "times": 2}


async def test_bodies_nest_and_their_paths_with_them(service: RunService) -> None:
    run = await service.execute(nested(), {"words": ["x", "y"]})
    assert run.status == "succeeded", run.error
    assert run.outputs == {"loud": ["X!", "Y!"]}
    assert run.nodes["m[1]/s/up"].output == {"text": "Y!"}
    assert run.nodes["m[1]/s"].progress == {"done": 1, "failed": 0, "total": 1}


async def test_paths_longer_than_a_node_id_are_stored(
    service: RunService, database: Database
) -> None:
    long_id = "m" * 60
    nodes = [
        {"id": "words", "type": "input", "params": {"name": "words", "schema": {"type": "array"}}},
        {"id": long_id, "type": "map", "params": {"graph": "shout"}},
        {"id": "loud", "type": "output", "params": {"name": "loud"}},
    ]
    document = workflow(
        nodes,
        [("words.value", f"{long_id}.items"), (f"{long_id}.loud", "loud.value")],
        subgraphs={"shout": SHOUT},
    )
    run = await service.execute(document, {"words": ["a"]})
    assert run.status == "succeeded", run.error
    stored = await RunService(database, test_registry()).get(run.id)
    assert stored.nodes[f"{long_id}[0]/suffix"].output == {"value": "!"}


def issues_of(document: Any) -> list[tuple[str, str | None, str | None]]:
    with pytest.raises(WorkflowInvalid) as raised:
        compile_plan(document, test_registry())
    return [(issue.code, issue.node, issue.path) for issue in raised.value.issues]


def _messages(document: Any) -> list[str]:
    with pytest.raises(WorkflowInvalid) as raised:
        compile_plan(document, test_registry())
    return [issue.message for issue in raised.value.issues]


def test_validation_reaches_into_bodies_with_paths() -> None:
    broken = body(
        [
            {"id": "word", "type": "input", "params": {"name": "word"}},
            {"id": "up", "type": "template", "params": {"template": "{{ w }}"}},
            {"id": "ghost", "type": "no_such_type"},
        ],
        ("word.value", "up.nothing"),
    )
    document = workflow(
        [{"id": "m", "type": "map", "params": {"graph": "broken"}}], subgraphs={"broken": broken}
    )
    found = issues_of(document)
    assert ("unknown_node_type", "ghost", "/subgraphs/broken/nodes/2/type") in found
    assert ("unknown_port", "up", "/subgraphs/broken/edges/0/to") in found


def test_unknown_subgraphs_and_bad_map_params_are_named() -> None:
    unknown = workflow(
        [{"id": "m", "type": "map", "params": {"graph": "nope"}}], subgraphs={"shout": SHOUT}
    )
    assert issues_of(unknown) == [("unknown_subgraph", "m", "/nodes/0/params/graph")]
    bad_over = workflow(
        [{"id": "m", "type": "map", "params": {"graph": "shout", "over": "nothing"}}],
        subgraphs={"shout": SHOUT},
    )
    assert issues_of(bad_over) == [("invalid_params", "m", "/nodes/0/params/over")]
    no_max = workflow(
        [{"id": "lp", "type": "loop", "params": {"graph": "grow"}}], subgraphs={"grow": GROW}
    )
    ((code, node, _),) = issues_of(no_max)
    assert (code, node) == ("invalid_params", "lp")


def test_a_body_that_contains_itself_is_refused_naming_the_chain() -> None:
    def calls(name: str) -> dict[str, Any]:
        return body([{"id": "inner", "type": "subgraph", "params": {"graph": name}}])

    document = workflow(
        [{"id": "s", "type": "subgraph", "params": {"graph": "a"}}],
        subgraphs={"a": calls("b"), "b": calls("a")},
    )
    found = issues_of(document)
    assert ("recursive_workflow", "inner", "/subgraphs/a") in found
    (message,) = {issue for issue in _messages(document) if "contains itself" in issue}
    assert "a → b → a" in message


def test_bodies_nest_eight_deep_at_most() -> None:
    subgraphs = {
        f"g{level}": body(
            [{"id": "inner", "type": "subgraph", "params": {"graph": f"g{level + 1}"}}]
        )
        for level in range(9)
    }
    subgraphs["g9"] = body([{"id": "leaf", "type": "template", "params": {"template": "x"}}])
    document = workflow(
        [{"id": "s", "type": "subgraph", "params": {"graph": "g0"}}], subgraphs=subgraphs
    )
    assert any("nest deeper than 8" in message for message in _messages(document))


def test_a_changed_body_changes_the_key_of_the_node_that_runs_it() -> None:
    louder = {**SHOUT, "nodes": [dict(node) for node in SHOUT["nodes"]]}
    louder["nodes"][3] = {**louder["nodes"][3], "params": {"template": "{{ w }}{{ suffix }}!!"}}
    changed = workflow(
        mapped_nodes(),
        [(edge.source, edge.target) for edge in mapped().edges],
        subgraphs={"shout": louder},
    )
    registry = test_registry()
    before = compile_plan(mapped(), registry).nodes["m"].key_material
    assert compile_plan(changed, registry).nodes["m"].key_material != before
    assert compile_plan(mapped(), registry).nodes["m"].key_material == before

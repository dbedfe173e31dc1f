"""Bodies (SPEC §12): `subgraph`, `map` and `loop` run a body of the document; its nodes are
the run's nodes by path, settled, stored and announced like any other, and reused item by item
on a rerun. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import msgspec
import pytest

from engine.documents.graph import compile_plan
from engine.errors import WorkflowInvalid
from engine.execution.events import AnyEvent, NodeCompleted
from engine.runs.service import RunService
from engine.storage.database import Database
from engine.storage.tables import RunRow
from tests.support.documents import workflow
from tests.support.nodes import Sleep, test_registry
from tests.support.runs import count


def edges(*pairs: tuple[str, str]) -> list[dict[str, str]]:
    return [{"from": source, "to": target} for source, target in pairs]


def body(nodes: list[dict[str, Any]], *pairs: tuple[str, str]) -> dict[str, Any]:
    return {"nodes": nodes, "edges": edges(*pairs)}


# A word, shouted after a wait: `word` is what a map maps over, `suffix` is given to every item.
SHOUT = body(
    [
        {"id": "word", "type": "input", "params": {"name": "word", "schema": {"type": "string"}}},
        {"id": "suffix", "type": "input", "params": {"name": "suffix", "default": "!"}},
        {"id": "wait", "type": "sleep", "params": {"seconds": 0.02}},
        {"id": "up", "type": "template", "params": {"template": "{{ w.upper() }}{{ suffix }}"}},
        {"id": "out", "type": "output", "params": {"name": "loud"}},
    ],
    ("word.value", "wait.x"),
    ("wait.y", "up.w"),
    ("suffix.value", "up.suffix"),
    ("up.text", "out.value"),
)
# One more letter each time: `text` is carried from one iteration to the next.
GROW = body(
    [
        {"id": "text", "type": "input", "params": {"name": "text"}},
        {"id": "more", "type": "sleep", "params": {"seconds": 0}},
        {"id": "add", "type": "template", "params": {"template": "{{ t }}a"}},
        {"id": "out", "type": "output", "params": {"name": "text"}},
        {"id": "n", "type": "template", "params": {"template": "{{ t | length }}"}},
        {"id": "size", "type": "output", "params": {"name": "size"}},
    ],
    ("text.value", "more.x"),
    ("more.y", "add.t"),
    ("add.text", "out.value"),
    ("add.text", "n.t"),
    ("n.text", "size.value"),
)


def mapped(**params: Any) -> Any:
    nodes = [
        {"id": "words", "type": "input", "params": {"name": "words", "schema": {"type": "array"}}},
        {"id": "m", "type": "map", "params": {"graph": "shout", **params}},
        {"id": "loud", "type": "output", "params": {"name": "loud"}},
        {"id": "errors", "type": "output", "params": {"name": "errors"}},
    ]
    wiring = [("words.value", "m.items"), ("m.loud", "loud.value"), ("m.errors", "errors.value")]
    return workflow(nodes, wiring, subgraphs={"shout": SHOUT})


def looped(**params: Any) -> Any:
    nodes = [
        {"id": "start", "type": "input", "params": {"name": "start", "default": "b"}},
        {"id": "lp", "type": "loop", "params": {"graph": "grow", **params}},
        {"id": "text", "type": "output", "params": {"name": "text"}},
        {"id": "times", "type": "output", "params": {"name": "times"}},
    ]
    wiring = [
        ("start.value", "lp.text"),
        ("lp.text", "text.value"),
        ("lp.iterations", "times.value"),
    ]
    return workflow(nodes, wiring, subgraphs={"grow": GROW})


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


SHOUT_IDS = [node["id"] for node in SHOUT["nodes"]]


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
    outer = body(
        [
            {"id": "word", "type": "input", "params": {"name": "word"}},
            {"id": "s", "type": "subgraph", "params": {"graph": "shout"}},
            {"id": "out", "type": "output", "params": {"name": "loud"}},
        ],
        ("word.value", "s.word"),
        ("s.loud", "out.value"),
    )
    nodes = [
        {"id": "words", "type": "input", "params": {"name": "words", "schema": {"type": "array"}}},
        {"id": "m", "type": "map", "params": {"graph": "outer"}},
        {"id": "loud", "type": "output", "params": {"name": "loud"}},
    ]
    document = workflow(
        nodes,
        [("words.value", "m.items"), ("m.loud", "loud.value")],
        subgraphs={"outer": outer, "shout": SHOUT},
    )
    run = await service.execute(document, {"words": ["x", "y"]})
    assert run.status == "succeeded", run.error
    assert run.outputs == {"loud": ["X!", "Y!"]}
    assert run.nodes["m[1]/s/up"].output == {"text": "Y!"}
    assert run.nodes["m[1]/s"].progress == {"done": 1, "failed": 0, "total": 1}


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


def issues_of(document: Any) -> list[tuple[str, str | None, str | None]]:
    with pytest.raises(WorkflowInvalid) as raised:
        compile_plan(document, test_registry())
    return [(issue.code, issue.node, issue.path) for issue in raised.value.issues]


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


def _messages(document: Any) -> list[str]:
    with pytest.raises(WorkflowInvalid) as raised:
        compile_plan(document, test_registry())
    return [issue.message for issue in raised.value.issues]


def test_a_changed_body_changes_the_key_of_the_node_that_runs_it() -> None:
    louder = {**SHOUT, "nodes": [dict(node) for node in SHOUT["nodes"]]}
    louder["nodes"][3] = {**louder["nodes"][3], "params": {"template": "{{ w }}{{ suffix }}!!"}}
    changed = workflow(
        [dict(node) for node in NODES_OF_MAPPED],
        [(edge.source, edge.target) for edge in mapped().edges],
        subgraphs={"shout": louder},
    )
    registry = test_registry()
    before = compile_plan(mapped(), registry).nodes["m"].key_material
    assert compile_plan(changed, registry).nodes["m"].key_material != before
    assert compile_plan(mapped(), registry).nodes["m"].key_material == before


NODES_OF_MAPPED = [msgspec.to_builtins(node) for node in mapped().nodes]


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


SHOUT_DOCUMENT = {"schema_version": 1, "name": "Shout", **SHOUT}


async def test_a_map_runs_a_saved_workflow_at_its_current_version_recorded(
    service: RunService,
) -> None:
    store = service.store
    saved = await store.create_workflow(workflow(**_terse(SHOUT_DOCUMENT)))
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
    await store.save_workflow(saved.id, workflow(**_terse(newer)), expected_version=1)
    second = await service.execute(caller, {"words": ["a"]})
    assert second.outputs["loud"] == ["A."]
    caller.nodes[1].params = {"workflow": saved.id, "version": 1}
    pinned = await service.execute(caller, {"words": ["a"]})
    assert pinned.outputs["loud"] == ["A!"]


def _terse(document: dict[str, Any]) -> dict[str, Any]:
    """A document as `workflow` takes it: edges as pairs."""
    edges = [(edge["from"], edge["to"]) for edge in document.get("edges", [])]
    rest = {key: value for key, value in document.items() if key not in ("nodes", "edges")}
    rest.pop("schema_version", None)
    return {"nodes": document["nodes"], "edges": edges, **rest}


async def test_a_saved_workflow_that_cannot_be_seen_is_unknown(service: RunService) -> None:
    saved = await service.store.create_workflow(workflow(**_terse(SHOUT_DOCUMENT)), owner_id="ada")
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
    b = await store.create_workflow(workflow(**_terse(SHOUT_DOCUMENT)))
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


async def test_a_resumed_run_keeps_the_items_its_map_finished(
    database: Database, tmp_path: Any
) -> None:
    slow = {**SHOUT, "nodes": [dict(node) for node in SHOUT["nodes"]]}
    slow["nodes"][2] = {"id": "wait", "type": "sleep", "params": {"seconds": 0.15}}
    document = workflow(
        [msgspec.to_builtins(node) for node in mapped(concurrency=1).nodes],
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


async def test_a_rerun_given_a_new_version_of_a_saved_body_reuses_what_did_not_change(
    service: RunService, database: Database
) -> None:
    store = service.store
    saved = await store.create_workflow(workflow(**_terse(SHOUT_DOCUMENT)))
    caller = mapped()
    caller.nodes[1].params = {"workflow": saved.id}
    parent = await service.execute(caller, {"words": ["a", "b"]})
    quieter = [dict(node) for node in SHOUT["nodes"]]
    quieter[1] = {**quieter[1], "params": {"name": "suffix", "default": "."}}
    await store.save_workflow(
        saved.id, workflow(**_terse({**SHOUT_DOCUMENT, "nodes": quieter})), expected_version=1
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
    saved = await service.store.create_workflow(workflow(**_terse(SHOUT_DOCUMENT)))
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

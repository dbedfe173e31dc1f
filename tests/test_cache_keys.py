from __future__ import annotations

from typing import Any

from engine.documents.graph import compile_plan
from engine.documents.inputs import resolve_inputs
from engine.execution.reasons import Reason
from tests.support.documents import workflow
from tests.support.engine import new_execution
from tests.support.nodes import Sleep, test_registry


def document(
    template: str = "About {{ topic }}.", ui: dict[str, Any] | None = None, **params: Any
) -> list[dict[str, Any]]:
    ask: dict[str, Any] = {
        "id": "ask",
        "type": "template",
        "params": {"template": template, **params},
    }
    if ui:
        ask["ui"] = ui
    return [
        {"id": "topic", "type": "input", "params": {"name": "topic", "schema": {"type": "string"}}},
        ask,
        {"id": "echo", "type": "sleep", "params": {}},
    ]


EDGES = [("topic.value", "ask.topic"), ("ask.text", "echo.x")]


async def keys(nodes: list[dict[str, Any]], topic: str = "bees") -> dict[str, str]:
    plan = compile_plan(workflow(nodes, EDGES), test_registry())
    result = await new_execution(plan, resolve_inputs(plan, {"topic": topic}), run_id="r").execute()
    return {node: state.cache_key or "" for node, state in result.nodes.items()}


async def test_same_inputs_same_keys() -> None:
    assert await keys(document()) == await keys(document())


async def test_ui_change_keeps_keys() -> None:
    assert await keys(document()) == await keys(document(ui={"x": 500, "y": 20, "color": "red"}))


async def test_common_params_do_not_change_keys() -> None:
    assert await keys(document()) == await keys(document(timeout_s=30, retries=2))


async def test_param_change_changes_the_key_and_everything_downstream() -> None:
    before, after = await keys(document()), await keys(document("On {{ topic }}."))
    assert before["topic"] == after["topic"]
    assert before["ask"] != after["ask"]
    assert before["echo"] != after["echo"]


async def test_input_value_is_part_of_the_input_node_key() -> None:
    before, after = await keys(document()), await keys(document(), topic="wasps")
    assert before["topic"] != after["topic"]
    assert before["ask"] != after["ask"]


async def test_equal_upstream_output_keeps_downstream_keys() -> None:
    # Different templates that render the same text: the consumer's key depends on the value.
    before = await keys(document("About {{ topic }}."))
    after = await keys(document("About {{ topic }}{{ '.' }}"))
    assert before["ask"] != after["ask"]
    assert before["echo"] == after["echo"]


async def test_matching_prior_results_are_taken_over_without_executing() -> None:
    plan = compile_plan(workflow(document(), EDGES), test_registry())
    inputs = resolve_inputs(plan, {"topic": "bees"})
    first = await new_execution(plan, inputs, run_id="run_1").execute()
    reuse = first.nodes  # a finished run's states are what a later run may take over
    Sleep.executions.clear()
    second = await new_execution(plan, inputs, run_id="run_2", reuse=reuse).execute()
    assert {node: state.status for node, state in second.nodes.items()} == dict.fromkeys(
        ["topic", "ask", "echo"], "cached"
    )
    assert Sleep.executions == []
    assert second.nodes["echo"].reason == "reused from run run_1"
    assert second.nodes["echo"].output == first.nodes["echo"].output

    forced = await new_execution(
        plan,
        inputs,
        run_id="run_3",
        reuse=reuse,
        force={"echo"},
        reasons={"echo": Reason("forced", ("from_node",))},
    ).execute()
    assert forced.nodes["echo"].status == "succeeded"
    assert forced.nodes["echo"].reason == "forced: from_node"
    assert Sleep.executions == ["echo"]

    changed = await new_execution(plan, {"topic": "ants"}, run_id="run_4", reuse=reuse).execute()
    assert changed.nodes["ask"].status == "succeeded"
    assert changed.nodes["topic"].reason == "input changed: topic"
    assert changed.nodes["ask"].reason == "upstream changed: topic"


async def test_cache_never_always_executes() -> None:
    nodes = document()
    nodes[2]["params"]["cache"] = "never"
    plan = compile_plan(workflow(nodes, EDGES), test_registry())
    first = await new_execution(plan, {"topic": "bees"}, run_id="run_1").execute()
    reuse = first.nodes
    second = await new_execution(plan, {"topic": "bees"}, run_id="run_2", reuse=reuse).execute()
    assert second.nodes["echo"].status == "succeeded"
    assert second.nodes["echo"].reason == "cache: never"

from __future__ import annotations

from typing import Any

import pytest

from engine.documents.graph import compile_plan
from engine.documents.inputs import coerce, resolve_inputs
from engine.errors import InputsInvalid
from engine.nodes.registry import NodeRegistry
from nodes.aggregate import json_merge, normalise, vote
from tests.support.documents import workflow
from tests.support.engine import new_execution


async def run_aggregate(registry: NodeRegistry, items: list[Any], **params: Any) -> Any:
    nodes: list[dict[str, Any]] = [
        {"id": f"i{n}", "type": "input", "params": {"name": f"i{n}", "default": item}}
        for n, item in enumerate(items)
    ]
    nodes.append({"id": "agg", "type": "aggregate", "params": params})
    edges = [(f"i{n}.value", "agg.items") for n in range(len(items))]
    plan = compile_plan(workflow(nodes, edges), registry)
    result = await new_execution(plan, resolve_inputs(plan, {}), run_id="r").execute()
    state = result.nodes["agg"]
    assert state.status == "succeeded", state.error
    return state.output["result"]  # type: ignore[index]


async def test_aggregate_modes(registry: NodeRegistry) -> None:
    assert await run_aggregate(registry, ["a", "b", 3], mode="concat", separator=", ") == "a, b, 3"
    assert await run_aggregate(registry, ["a", {"b": 1}], mode="list") == ["a", {"b": 1}]
    assert await run_aggregate(registry, ["Paris.", "paris", "Lyon"], mode="vote") == "Paris."
    merged = await run_aggregate(
        registry, [{"a": {"x": 1}}, '{"a": {"y": 2}, "b": 3}'], mode="json_merge"
    )
    assert merged == {"a": {"x": 1, "y": 2}, "b": 3}
    text = await run_aggregate(
        registry, ["x", "y"], mode="template", template="{% for i in items %}[{{ i }}]{% endfor %}"
    )
    assert text == "[x][y]"


def test_vote_normalises_and_breaks_ties_by_order() -> None:
    assert normalise('  "Yes!" ') == "yes"
    assert vote(["no", "Yes", "yes."]) == "Yes"
    assert vote(["b", "a"]) == "b"


def test_json_merge_rejects_non_objects() -> None:
    with pytest.raises(Exception, match="item 1 is list"):
        json_merge([{}, [1]])


async def test_template_json_format(registry: NodeRegistry) -> None:
    nodes = [
        {
            "id": "t",
            "type": "template",
            "params": {"template": '{"n": {{ 1 + 2 }}}', "format": "json"},
        }
    ]
    result = await new_execution(compile_plan(workflow(nodes), registry), {}, run_id="r").execute()
    assert result.nodes["t"].output == {"text": '{"n": 3}', "json": {"n": 3}}


async def test_template_is_sandboxed(registry: NodeRegistry) -> None:
    nodes = [
        {
            "id": "t",
            "type": "template",
            "params": {"template": "{{ ''.__class__.__mro__[1].__subclasses__() }}"},
        }
    ]
    result = await new_execution(compile_plan(workflow(nodes), registry), {}, run_id="r").execute()
    assert result.nodes["t"].status == "failed"
    assert "unsafe" in (result.nodes["t"].error or "")


async def test_template_missing_attribute_fails_with_line(registry: NodeRegistry) -> None:
    nodes = [
        {"id": "v", "type": "input", "params": {"name": "v", "default": {"a": 1}}},
        {"id": "t", "type": "template", "params": {"template": "line one\n{{ v.nope }}"}},
    ]
    plan = compile_plan(workflow(nodes, [("v.value", "t.v")]), registry)
    result = await new_execution(plan, resolve_inputs(plan, {}), run_id="r").execute()
    assert (
        result.nodes["t"].error == "template error (line 2): 'dict object' has no attribute 'nope'"
    )


def test_template_ports_come_from_its_variables(registry: NodeRegistry) -> None:
    ports = registry["template"].input_ports(
        {
            "template": "{% set x = 1 %}{{ b }} {{ a }} "
            "{% for i in range(3) %}{{ i }}{{ loop.index }}{% endfor %}{{ x }}"
        }
    )
    assert [port.name for port in ports] == ["b", "a"]


def test_inputs_are_coerced_by_schema() -> None:
    assert coerce("3", {"type": "integer"}) == 3
    assert coerce("3", {"type": "number"}) == 3
    assert coerce("2.5", {"type": "number"}) == 2.5
    assert coerce("yes", {"type": "boolean"}) is True
    assert coerce("3", {"type": "string"}) == "3"
    assert coerce('{"a": 1}', {"type": "object"}) == {"a": 1}
    assert coerce("plain words", {}) == "plain words"
    assert coerce("x", {"type": "integer"}) == "x"  # left for validation to reject


def test_resolve_inputs_reports_every_problem(registry: NodeRegistry) -> None:
    nodes = [
        {"id": "n", "type": "input", "params": {"name": "n", "schema": {"type": "integer"}}},
        {"id": "t", "type": "input", "params": {"name": "t", "schema": {"type": "string"}}},
        {"id": "d", "type": "input", "params": {"name": "d", "default": "x"}},
    ]
    plan = compile_plan(workflow(nodes), registry)
    assert resolve_inputs(plan, {"n": 3, "t": "a"}) == {"n": 3, "t": "a", "d": "x"}
    with pytest.raises(InputsInvalid) as caught:
        resolve_inputs(plan, {"n": "x", "bogus": 1})
    message = caught.value.detail
    assert "unknown input 'bogus' (this workflow's inputs: d, n, t)" in message
    assert "input 'n' (node n): 'x' is not of type 'integer'" in message
    assert "input 't' is required (node t)" in message

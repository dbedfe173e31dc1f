from __future__ import annotations

from typing import Any

import pytest

from engine.documents.graph import analyse, validate
from engine.documents.issues import Issue
from engine.nodes.registry import NodeRegistry
from tests.support.documents import workflow

INPUT = {"id": "topic", "type": "input", "params": {"name": "topic", "schema": {"type": "string"}}}
NUMBER = {"id": "n", "type": "input", "params": {"name": "n", "schema": {"type": "integer"}}}


def template(node_id: str, source: str) -> dict[str, Any]:
    return {"id": node_id, "type": "template", "params": {"template": source}}


def output(node_id: str = "out") -> dict[str, Any]:
    return {"id": node_id, "type": "output", "params": {"name": node_id}}


def issues_of(
    registry: NodeRegistry, nodes: list[dict[str, Any]], edges: list[tuple[str, str]] = ()
) -> list[Issue]:  # type: ignore[assignment]
    return validate(workflow(nodes, edges), registry)


def only(issues: list[Issue], code: str) -> Issue:
    matching = [issue for issue in issues if issue.code == code]
    assert len(matching) == 1, issues
    return matching[0]


def test_valid_workflow_has_no_issues(registry: NodeRegistry) -> None:
    nodes = [INPUT, template("ask", "About {{ topic }}"), output()]
    plan, issues = analyse(
        workflow(nodes, [("topic.value", "ask.topic"), ("ask.text", "out.value")]), registry
    )
    assert issues == []
    assert plan is not None
    assert list(plan.nodes) == ["topic", "ask", "out"]


def test_unknown_node_type(registry: NodeRegistry) -> None:
    issue = only(issues_of(registry, [{"id": "x", "type": "teleport"}]), "unknown_node_type")
    assert (issue.node, issue.path) == ("x", "/nodes/0/type")
    assert "teleport" in issue.message


def test_duplicate_node_id(registry: NodeRegistry) -> None:
    issue = only(issues_of(registry, [output("a"), output("a")]), "duplicate_node_id")
    assert (issue.node, issue.path) == ("a", "/nodes/1/id")


@pytest.mark.parametrize("bad_id", ["1abc", "has space", "dot.ted", "", "x" * 65])
def test_invalid_node_id(registry: NodeRegistry, bad_id: str) -> None:
    node = {"id": bad_id, "type": "output", "params": {"name": "o"}}
    issue = only(issues_of(registry, [node]), "invalid_id")
    assert issue.path == "/nodes/0/id"


def test_malformed_edge_reference(registry: NodeRegistry) -> None:
    issue = only(issues_of(registry, [output()], [("nodot", "out.value")]), "invalid_id")
    assert issue.path == "/edges/0/from"
    assert "node.port" in issue.message


def test_unknown_port_lists_the_ports(registry: NodeRegistry) -> None:
    issues = issues_of(
        registry, [INPUT, template("ask", "{{ topic }}")], [("topic.valu", "ask.topic")]
    )
    issue = only(issues, "unknown_port")
    assert (issue.node, issue.port, issue.path) == ("topic", "valu", "/edges/0/from")
    assert "output ports: value" in issue.message


def test_edge_to_missing_node(registry: NodeRegistry) -> None:
    issue = only(issues_of(registry, [INPUT], [("topic.value", "ghost.x")]), "missing_node")
    assert (issue.node, issue.path) == ("ghost", "/edges/0/to")


def test_type_mismatch_between_typed_ports(registry: NodeRegistry) -> None:
    from engine.nodes.types import NodeContext, NodeType, Port

    class NeedsInteger(NodeType):
        type = "needs_integer"
        title = "Needs integer"
        inputs = (Port("count", "integer"),)

        async def run(self, inputs: dict[str, Any], context: NodeContext) -> dict[str, Any]:
            return {}

    registry.register(NeedsInteger)
    nodes = [
        INPUT,
        NUMBER,
        {"id": "a", "type": "needs_integer"},
        {"id": "b", "type": "needs_integer"},
    ]
    issues = issues_of(registry, nodes, [("topic.value", "a.count"), ("n.value", "b.count")])
    issue = only(issues, "type_mismatch")
    assert (issue.node, issue.port, issue.path) == ("a", "count", "/edges/0")
    assert "gives string" in issue.message
    assert "takes integer" in issue.message


def test_second_edge_into_a_single_port(registry: NodeRegistry) -> None:
    nodes = [INPUT, template("a", "{{ topic }}"), template("b", "{{ topic }}"), output()]
    edges = [
        ("topic.value", "a.topic"),
        ("topic.value", "b.topic"),
        ("a.text", "out.value"),
        ("b.text", "out.value"),
    ]
    issue = only(issues_of(registry, nodes, edges), "multiple_edges")
    assert (issue.node, issue.port, issue.path) == ("out", "value", "/edges/3")


def test_many_port_takes_several_edges(registry: NodeRegistry) -> None:
    nodes = [INPUT, NUMBER, {"id": "agg", "type": "aggregate", "params": {"mode": "list"}}]
    assert (
        issues_of(registry, nodes, [("topic.value", "agg.items"), ("n.value", "agg.items")]) == []
    )


def test_missing_input(registry: NodeRegistry) -> None:
    issues = issues_of(registry, [template("ask", "{{ a }} {{ b }}")])
    assert [(i.code, i.node, i.port, i.path) for i in issues] == [
        ("missing_input", "ask", "a", "/nodes/0"),
        ("missing_input", "ask", "b", "/nodes/0"),
    ]


def test_invalid_params_name_the_field(registry: NodeRegistry) -> None:
    nodes = [
        {"id": "agg", "type": "aggregate", "params": {"mode": "shout", "separator": 3}},
        {"id": "o", "type": "output", "params": {"name": "o", "timeout_s": -1, "extra": True}},
    ]
    issues = [issue for issue in issues_of(registry, nodes) if issue.code == "invalid_params"]
    paths = {(issue.node, issue.path) for issue in issues}
    assert ("agg", "/nodes/0/params/mode") in paths
    assert ("agg", "/nodes/0/params/separator") in paths
    assert ("o", "/nodes/1/params/timeout_s") in paths
    assert ("o", "/nodes/1/params") in paths  # additional property `extra`
    assert any("'shout' is not one of" in issue.message for issue in issues)


def test_input_default_must_fit_its_schema(registry: NodeRegistry) -> None:
    node = {
        "id": "n",
        "type": "input",
        "params": {"name": "n", "schema": {"type": "integer"}, "default": "x"},
    }
    issue = only(issues_of(registry, [node]), "invalid_params")
    assert issue.path == "/nodes/0/params/default"


def test_cycle_names_its_nodes(registry: NodeRegistry) -> None:
    nodes = [template("a", "{{ x }}"), template("b", "{{ x }}"), template("c", "{{ x }}")]
    issue = only(
        issues_of(registry, nodes, [("a.text", "b.x"), ("b.text", "c.x"), ("c.text", "a.x")]),
        "cycle",
    )
    assert issue.message == "cycle: a → b → c → a"
    assert issue.path == "/edges/2"


def test_self_loop_is_a_cycle(registry: NodeRegistry) -> None:
    issue = only(issues_of(registry, [template("a", "{{ x }}")], [("a.text", "a.x")]), "cycle")
    assert issue.message == "cycle: a → a"


def test_template_syntax_error_names_the_line(registry: NodeRegistry) -> None:
    issue = only(issues_of(registry, [template("ask", "fine\n{% if %}\n")]), "template_syntax")
    assert (issue.node, issue.path) == ("ask", "/nodes/0/params/template")
    assert issue.message.startswith("line 2:")


def test_condition_expression_syntax(registry: NodeRegistry) -> None:
    node = {"id": "c", "type": "condition", "params": {"expression": "value >"}}
    issue = only(issues_of(registry, [node]), "template_syntax")
    assert issue.path == "/nodes/0/params/expression"


def test_all_errors_are_collected(registry: NodeRegistry) -> None:
    nodes = [{"id": "x", "type": "teleport"}, output("a"), output("a"), template("t", "{% for %}")]
    codes = {issue.code for issue in issues_of(registry, nodes, [("ghost.x", "a.value")])}
    assert codes >= {"unknown_node_type", "duplicate_node_id", "template_syntax", "missing_node"}


def test_a_broken_node_reports_one_error_not_a_cascade(registry: NodeRegistry) -> None:
    nodes = [INPUT, template("ask", "{% if %}{{ topic }}"), output()]
    issues = issues_of(registry, nodes, [("topic.value", "ask.topic"), ("ask.text", "out.value")])
    assert [(issue.code, issue.node) for issue in issues] == [("template_syntax", "ask")]

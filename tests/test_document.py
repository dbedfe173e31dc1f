from __future__ import annotations

import pytest

from engine.documents.document import decode_workflow, export_workflow, workflow_json_schema
from engine.errors import WorkflowInvalid

DOCUMENT = b"""{"schema_version": 1, "name": "One sentence", "description": "d",
 "nodes": [{"id": "topic", "type": "input",
            "params": {"name": "topic", "schema": {"type": "string"},
             "default": "bees"}, "ui": {"x": 40, "y": 80.5, "collapsed": true}},
           {"id": "ask", "type": "template", "params": {"template": "About {{ topic }}."}}],
 "edges": [{"from": "topic.value", "to": "ask.topic"}]}"""


def test_export_is_byte_stable() -> None:
    exported = export_workflow(decode_workflow(DOCUMENT))
    assert export_workflow(decode_workflow(exported)) == exported
    assert exported.endswith(b"}\n")
    assert b'\n  "edges": [\n' in exported  # two-space indent, sorted keys


def test_node_and_edge_order_is_kept() -> None:
    workflow = decode_workflow(DOCUMENT)
    assert [node.id for node in workflow.nodes] == ["topic", "ask"]
    assert workflow.edges[0].source == "topic.value"


@pytest.mark.parametrize(
    ("data", "message", "path", "node"),
    [
        (
            b'{"schema_version": 1, "name": "x", "nodes": [{"id": 3, "type": "t"}]}',
            "Expected `str`, got `int`",
            "/nodes/0/id",
            None,
        ),
        (
            b'{"schema_version": 1, "name": "x", "nodes": [{"id": "a", "type": "t", "colour": 1}]}',
            "unknown field `colour`",
            "/nodes/0/colour",
            "a",
        ),
        (
            b'{"schema_version": 2, "name": "x", "nodes": []}',
            "Invalid enum value 2",
            "/schema_version",
            None,
        ),
        (b'{"schema_version": 1, "name": "x"}', "missing required field `nodes`", "", None),
        (b'{"schema_version": 1,\n "name": "x",,}', "line 2, column", "", None),
        (
            b'{"schema_version": 1, "name": "x", "nodes": [], "edges": [{"from": "a.b"}]}',
            "missing required field `to`",
            "/edges/0",
            None,
        ),
    ],
)
def test_decoding_errors_carry_the_path(
    data: bytes, message: str, path: str, node: str | None
) -> None:
    with pytest.raises(WorkflowInvalid) as caught:
        decode_workflow(data)
    (issue,) = caught.value.issues
    assert issue.code == "invalid_document"
    assert message in issue.message
    assert issue.path == path
    assert issue.node == node


def test_published_json_schema(snapshot: object) -> None:
    assert workflow_json_schema() == snapshot


def test_tags_and_sticky_notes_round_trip_byte_stable() -> None:
    document = (
        '{"schema_version": 1, "name": "Noted", "tags": ["demo", "b"], "nodes": [],'
        ' "ui": {"notes": [{"id": "note1", "text": "**Why** this", "x": 10, "y": 20.5}]}}'
    )
    first = export_workflow(decode_workflow(document))
    assert export_workflow(decode_workflow(first)) == first
    assert b'"tags": [\n    "demo",\n    "b"\n  ]' in first  # their order is kept
    with pytest.raises(WorkflowInvalid) as refused:
        decode_workflow('{"schema_version": 1, "name": "x", "nodes": [],'
                        ' "ui": {"notes": [{"id": "n", "colour": "red"}]}}')
    assert refused.value.issues[0].path == "/ui/notes/0/colour"

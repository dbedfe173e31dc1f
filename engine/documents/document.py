"""The workflow document (schema_version 1): strict msgspec types, decoding, stable export."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

import msgspec

from engine.documents.issues import Issue, pointer
from engine.errors import WorkflowInvalid
from engine.nodes.body import BodyNode

__all__ = [
    "SCHEMA_VERSION",
    "Edge",
    "Node",
    "NodeUI",
    "Note",
    "Subgraph",
    "Workflow",
    "WorkflowUI",
    "decode_workflow",
    "export_workflow",
    "from_builtins",
    "to_builtins",
    "with_params",
    "workflow_json_schema",
    "workflow_with_params",
]

SCHEMA_VERSION = 1

# A document is plain data that never refers back to itself: with ``gc=False`` the cyclic garbage
# collector does not track its structs, so decoding a big one sets off no collections (in a
# process holding many runs, a full one costs more than the decoding).


class NodeUI(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True, gc=False):
    """Editor-only placement of a node; never part of execution or cache keys."""

    x: int | float | None = None
    y: int | float | None = None
    width: int | float | None = None
    height: int | float | None = None
    color: str | None = None
    collapsed: bool = False


class Node(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True, gc=False):
    id: str
    type: str
    params: dict[str, Any] = {}
    ui: NodeUI | None = None


class Edge(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """A connection ``"node.port" -> "node.port"``."""

    source: str = msgspec.field(name="from")
    target: str = msgspec.field(name="to")


class Subgraph(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True, gc=False):
    """A named body, run by `subgraph`, `map` and `loop` nodes: a graph like the top level,
    whose `input` nodes are its input ports and whose `output` nodes are its output ports."""

    nodes: list[Node]
    edges: list[Edge] = []
    description: str = ""


class Note(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True, gc=False):
    """A sticky note on the canvas (Markdown): a comment, never part of execution."""

    id: str
    text: str = ""
    x: int | float = 0
    y: int | float = 0
    width: int | float | None = None
    color: str | None = None


class WorkflowUI(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True, gc=False):
    """Editor-only things of the whole workflow; never part of execution or cache keys."""

    notes: list[Note] = []


class Workflow(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True, gc=False):
    schema_version: Literal[1]
    name: str
    nodes: list[Node]
    edges: list[Edge] = []
    description: str = ""
    subgraphs: dict[str, Subgraph] = {}
    tags: list[str] = []  # labels the workflows page filters by; never part of execution
    ui: WorkflowUI | None = None


_decoder = msgspec.json.Decoder(Workflow)
_encoder = msgspec.json.Encoder(order="sorted")
_path_in_message = re.compile(r" - at `\$(?P<path>[^`]*)`$")
_path_part = re.compile(r"\.([^.\[]+)|\[(\d+)\]")


def _json_pointer(msgspec_path: str) -> str:
    parts = [name or int(index) for name, index in _path_part.findall(msgspec_path)]
    return pointer(*parts) if parts else ""


def _byte_position(data: bytes, message: str) -> str:
    found = re.search(r"\(byte (\d+)\)", message)
    if not found:
        return message
    offset = int(found.group(1))
    line = data.count(b"\n", 0, offset) + 1
    column = offset - (data.rfind(b"\n", 0, offset) + 1) + 1
    return f"{message[: found.start()].rstrip()} (line {line}, column {column})"


def decode_workflow(data: bytes | str) -> Workflow:
    """Decode a document; `WorkflowInvalid` carries an ``invalid_document`` issue with its path."""
    raw = data.encode() if isinstance(data, str) else data
    try:
        return _decoder.decode(raw)
    except msgspec.ValidationError as exc:
        try:  # msgspec checks types while parsing: a cut-off document is a syntax error first
            msgspec.json.decode(raw)
        except msgspec.DecodeError as syntax:
            message = _byte_position(raw, str(syntax))
            raise WorkflowInvalid([Issue("invalid_document", message, path="")]) from None
        message = str(exc)
        found = _path_in_message.search(message)
        path = _json_pointer(found.group("path")) if found else ""
        if found:
            message = message[: found.start()]
        unknown = re.match(r"Object contains unknown field `([^`]+)`", message)
        if unknown:
            path += pointer(unknown.group(1))
        node = _node_at(raw, path)
        raise WorkflowInvalid([Issue("invalid_document", message, node=node, path=path)]) from None
    except msgspec.DecodeError as exc:
        message = _byte_position(raw, str(exc))
        raise WorkflowInvalid([Issue("invalid_document", message, path="")]) from None


def _node_at(raw: bytes, path: str) -> str | None:
    """The id of the node a decoding error points into, when it has one."""
    found = re.match(r"^/nodes/(\d+)", path)
    if not found:
        return None
    try:
        nodes = msgspec.json.decode(raw).get("nodes")
        node_id = nodes[int(found.group(1))].get("id")
    except (msgspec.DecodeError, AttributeError, IndexError, TypeError):
        return None
    return node_id if isinstance(node_id, str) else None


def to_builtins(workflow: Workflow) -> dict[str, Any]:
    result: dict[str, Any] = msgspec.to_builtins(workflow, order="sorted")
    return result


def with_params(stored: dict[str, Any], params: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """A stored document with param overrides ({node: {param: value}}) applied.

    A key that is a path (``m/llm``, ``m/s/llm``) changes a node inside a body node's body, for
    that body node alone: the body is copied as the node's own (``<graph>--<node>``, made once
    and changed in place after) and the node runs the copy. The result is a document that runs
    exactly as the overrides say."""
    if not params:
        return stored
    subgraphs = dict(stored.get("subgraphs") or {})
    result = {**stored, "nodes": _apply(stored["nodes"], params, subgraphs)}
    if subgraphs:
        result["subgraphs"] = subgraphs
    return result


def workflow_with_params(workflow: Workflow, params: Mapping[str, Mapping[str, Any]]) -> Workflow:
    """``workflow`` with param overrides applied, as `with_params` applies them to its stored
    form. Nodes without overrides are shared with ``workflow``, not copied."""
    if not params:
        return workflow
    if any("/" in path for path in params):  # bodies are copied: in the stored form
        return from_builtins(with_params(to_builtins(workflow), params))
    nodes = [
        node
        if node.id not in params
        else msgspec.structs.replace(node, params={**node.params, **params[node.id]})
        for node in workflow.nodes
    ]
    return msgspec.structs.replace(workflow, nodes=nodes)


def _apply(
    nodes: list[dict[str, Any]],
    params: Mapping[str, Mapping[str, Any]],
    subgraphs: dict[str, Any],
) -> list[dict[str, Any]]:
    own = {node: changes for node, changes in params.items() if "/" not in node}
    inner: dict[str, dict[str, Mapping[str, Any]]] = {}
    for path, changes in params.items():
        if "/" in path:
            node, _, rest = path.partition("/")
            inner.setdefault(node, {})[rest] = changes
    return [
        _with_own(node, own.get(node["id"]), inner.get(node["id"]), subgraphs) for node in nodes
    ]


def _with_own(
    node: dict[str, Any],
    changes: Mapping[str, Any] | None,
    inner: Mapping[str, Mapping[str, Any]] | None,
    subgraphs: dict[str, Any],
) -> dict[str, Any]:
    """One node with its overrides, and those of the nodes in its body (``inner``, by path
    from the body), its body copied as its own into ``subgraphs``."""
    if not changes and not inner:
        return node
    params = {**node.get("params", {}), **(changes or {})}
    graph = BodyNode.body_name(params)
    if inner and graph is not None and graph in subgraphs:
        suffix = f"--{node['id']}"
        name = re.sub(r"[^A-Za-z0-9_-]", "_", graph)  # a saved workflow's: `wf_x@3`
        private = graph if graph.endswith(suffix) else (name[: 64 - len(suffix)] + suffix)
        body = subgraphs[graph]
        subgraphs[private] = {**body, "nodes": _apply(body.get("nodes", []), inner, subgraphs)}
        params.pop("workflow", None)  # a saved workflow's copy, changed, is the node's own
        params.pop("version", None)
        params["graph"] = private
    return {**node, "params": params}


def from_builtins(value: Any) -> Workflow:
    """Convert plain Python data (as from a JSON body) into a `Workflow`."""
    return decode_workflow(msgspec.json.encode(value))


def export_workflow(workflow: Workflow) -> bytes:
    """Canonical bytes: sorted keys, two-space indent, final newline; stable across round trips."""
    return msgspec.json.format(_encoder.encode(workflow), indent=2) + b"\n"


def workflow_json_schema() -> dict[str, Any]:
    """The JSON Schema of the document, generated from the types above."""
    schema: dict[str, Any] = msgspec.json.schema(Workflow)
    return schema

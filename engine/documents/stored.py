"""A compiled plan as stored: what compiling a document made of it (the nodes' ports, sources,
settings and order, and the plans of the bodies its nodes run), so that another process runs or
reruns the document without validating and compiling it again. A stored plan stands for its
document only under the node types it was compiled with: its key (`plan_key`) includes the
registry's `signature`."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

import msgspec

from engine.documents.document import Workflow
from engine.documents.graph import body_document
from engine.documents.plan import Plan, PlanNode, collection_paused
from engine.nodes.body import BodyNode
from engine.nodes.registry import NodeRegistry, NodeSettings
from engine.nodes.types import NodeType, Port

__all__ = ["decode_plan", "encode_plan", "plan_key"]

FORMAT = 4  # of the stored form below; part of the key

_Settings = tuple[float | None, int, float, str]


class _Node(msgspec.Struct, array_like=True, gc=False):
    id: str
    index: int
    type: int  # in `_Stored.types`
    params: dict[str, Any]
    settings: int  # in `_Stored.settings`
    # None: the type's own ports (they depend on the params only for `dynamic_ports` types).
    inputs: list[Port] | None
    outputs: list[Port] | None
    sources: dict[str, list[tuple[str, str]]]
    successors: list[str]
    predecessors: list[str]
    key_material: bytes
    body: str | None  # the subgraph a body node runs


class _Stored(msgspec.Struct, array_like=True, gc=False):
    """A plan as stored: its nodes and its bodies', which name the node types and settings by
    position (a thousand nodes of a few types share them)."""

    types: list[str]
    settings: list[_Settings]
    nodes: list[_Node]
    bodies: dict[str, list[_Node]]  # the plans of the bodies run, by subgraph


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(_Stored)


def plan_key(document: str, registry: NodeRegistry) -> str:
    """The key of the plan of a stored document (``document``: its blob's digest) compiled
    with ``registry``'s node types."""
    return hashlib.sha256(f"{FORMAT}:{document}:{registry.signature}".encode()).hexdigest()


def encode_plan(plan: Plan) -> bytes:
    bodies: dict[str, list[_Node]] = {}
    types: dict[str, int] = {}
    settings: dict[_Settings, int] = {}

    def stored(plan: Plan) -> list[_Node]:
        nodes = []
        for node in plan.nodes.values():
            body = None
            if node.body is not None:
                body = node.body.workflow.name  # its subgraph's
                if body not in bodies:
                    bodies[body] = []  # while it is being stored
                    bodies[body] = stored(node.body)
            made = node.settings
            setting = (made.timeout_s, made.retries, made.retry_backoff_s, made.cache)
            dynamic = node.node_type.dynamic_ports
            nodes.append(
                _Node(
                    id=node.id,
                    index=node.index,
                    type=types.setdefault(node.node_type.type, len(types)),
                    params=node.params,
                    settings=settings.setdefault(setting, len(settings)),
                    inputs=list(node.inputs.values()) if dynamic else None,
                    outputs=list(node.outputs.values()) if dynamic else None,
                    sources=node.sources,
                    successors=node.successors,
                    predecessors=node.predecessors,
                    key_material=node.key_material,
                    body=body,
                )
            )
        return nodes

    nodes = stored(plan)
    return _encoder.encode(_Stored(list(types), list(settings), nodes, bodies))


def decode_plan(data: bytes, workflow: Workflow, registry: NodeRegistry) -> Plan | None:
    """The plan ``encode_plan`` stored for ``workflow``; None when it does not fit (a node type
    the registry lacks, a node the document does not have, a body it does not have)."""
    with collection_paused():
        try:
            stored = _decoder.decode(data)
        except msgspec.DecodeError:
            return None
        decoding = _Decoding(stored, workflow, registry)
        if decoding.types is None:
            return None
        try:
            return decoding.plan(stored.nodes, workflow)
        except IndexError:  # a type or settings the plan does not have
            return None


class _Decoding:
    """One stored plan being made again: its bodies' plans, each made once."""

    def __init__(self, stored: _Stored, workflow: Workflow, registry: NodeRegistry) -> None:
        self.bodies = stored.bodies
        self.workflow = workflow
        self.made: dict[str, Plan | None] = {}
        self.settings = [
            NodeSettings(timeout_s, retries, backoff, "never" if cache == "never" else "auto")
            for timeout_s, retries, backoff, cache in stored.settings
        ]
        # Each type's class, whether it runs a body and, without dynamic ports, its ports,
        # shared by its nodes (no one changes them); None: a type the registry lacks.
        self.types: list[_Type] | None = []
        for kind in stored.types:
            node_type = registry.get(kind)
            if node_type is None:
                self.types = None
                break
            self.types.append(
                (
                    node_type,
                    issubclass(node_type, BodyNode),
                    _by_name(node_type.inputs),
                    _by_name(node_type.outputs),
                )
            )

    def body(self, name: str) -> Plan | None:
        if name in self.made:
            return self.made[name]  # None also while it is being made: a body within itself
        self.made[name] = None
        stored = self.bodies.get(name)
        if stored is None or name not in self.workflow.subgraphs:
            return None
        plan = self.made[name] = self.plan(stored, body_document(self.workflow, name))
        return plan

    def plan(self, stored: list[_Node], workflow: Workflow) -> Plan | None:
        documented = workflow.nodes
        count = len(documented)
        if len(stored) != count:
            return None
        types, settings = self.types, self.settings
        assert types is not None
        nodes: dict[str, PlanNode] = {}
        for node in stored:
            node_type, runs_body, inputs, outputs = types[node.type]
            index, node_id = node.index, node.id
            if not 0 <= index < count or documented[index].id != node_id:
                return None
            body = None
            if runs_body != (node.body is not None):
                return None
            if node.body is not None:
                body = self.body(node.body)
                if body is None:
                    return None
            if node.inputs is not None or node.outputs is not None:
                inputs = _by_name(node_type.inputs if node.inputs is None else node.inputs)
                outputs = _by_name(node_type.outputs if node.outputs is None else node.outputs)
            nodes[node_id] = PlanNode(  # positionally: half what keywords cost
                node_id,
                index,
                node_type,
                node.params,
                settings[node.settings],
                inputs,
                outputs,
                node.sources,
                node.successors,
                node.predecessors,
                node.key_material,
                body,
            )
        return Plan(workflow, nodes)


_Type = tuple[type[NodeType], bool, dict[str, Port], dict[str, Port]]


def _by_name(ports: Iterable[Port]) -> dict[str, Port]:
    return {port.name: port for port in ports}

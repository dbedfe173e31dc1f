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

FORMAT = 3  # of the stored form below; part of the key


class _Node(msgspec.Struct, array_like=True, gc=False):
    id: str
    index: int
    type: str
    params: dict[str, Any]
    settings: tuple[float | None, int, float, str]
    # None: the type's own ports (they depend on the params only for `dynamic_ports` types).
    inputs: list[Port] | None
    outputs: list[Port] | None
    sources: dict[str, list[tuple[str, str]]]
    successors: list[str]
    predecessors: list[str]
    key_material: bytes
    body: str | None  # the subgraph a body node runs


class _Stored(msgspec.Struct, array_like=True, gc=False):
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

    def stored(plan: Plan) -> list[_Node]:
        nodes = []
        for node in plan.nodes.values():
            body = None
            if node.body is not None:
                body = node.body.workflow.name  # its subgraph's
                if body not in bodies:
                    bodies[body] = []  # while it is being stored
                    bodies[body] = stored(node.body)
            nodes.append(
                _Node(
                    id=node.id,
                    index=node.index,
                    type=node.node_type.type,
                    params=node.params,
                    settings=(
                        node.settings.timeout_s,
                        node.settings.retries,
                        node.settings.retry_backoff_s,
                        node.settings.cache,
                    ),
                    inputs=list(node.inputs.values()) if node.node_type.dynamic_ports else None,
                    outputs=list(node.outputs.values()) if node.node_type.dynamic_ports else None,
                    sources=node.sources,
                    successors=node.successors,
                    predecessors=node.predecessors,
                    key_material=node.key_material,
                    body=body,
                )
            )
        return nodes

    return _encoder.encode(_Stored(stored(plan), bodies))


def decode_plan(data: bytes, workflow: Workflow, registry: NodeRegistry) -> Plan | None:
    """The plan ``encode_plan`` stored for ``workflow``; None when it does not fit (a node type
    the registry lacks, a node the document does not have, a body it does not have)."""
    with collection_paused():
        try:
            stored = _decoder.decode(data)
        except msgspec.DecodeError:
            return None
        return _Decoding(stored.bodies, workflow, registry).plan(stored.nodes, workflow)


class _Decoding:
    """One stored plan being made again: its bodies' plans, each made once."""

    def __init__(
        self, bodies: dict[str, list[_Node]], workflow: Workflow, registry: NodeRegistry
    ) -> None:
        self.bodies = bodies
        self.workflow = workflow
        self.registry = registry
        self.made: dict[str, Plan | None] = {}
        self.settings: dict[tuple[Any, ...], NodeSettings] = {}
        # Each type's class and, without dynamic ports, its ports, shared by its nodes (no one
        # changes them).
        self.types: dict[str, tuple[type[NodeType], dict[str, Port], dict[str, Port]] | None] = {}

    def body(self, name: str) -> Plan | None:
        if name in self.made:
            return self.made[name]  # None also while it is being made: a body within itself
        self.made[name] = None
        stored = self.bodies.get(name)
        if stored is None or name not in self.workflow.subgraphs:
            return None
        plan = self.made[name] = self.plan(stored, body_document(self.workflow, name))
        return plan

    def type_of(self, kind: str) -> tuple[type[NodeType], dict[str, Port], dict[str, Port]] | None:
        if kind not in self.types:
            node_type = self.registry.get(kind)
            self.types[kind] = (
                None
                if node_type is None
                else (node_type, _by_name(node_type.inputs), _by_name(node_type.outputs))
            )
        return self.types[kind]

    def plan(self, stored: list[_Node], workflow: Workflow) -> Plan | None:
        documented = workflow.nodes
        if len(stored) != len(documented):
            return None
        nodes: dict[str, PlanNode] = {}
        for node in stored:
            found = self.type_of(node.type)
            if found is None:
                return None
            node_type, inputs, outputs = found
            index = node.index
            if not 0 <= index < len(documented) or documented[index].id != node.id:
                return None
            body = None
            if issubclass(node_type, BodyNode) != (node.body is not None):
                return None
            if node.body is not None:
                body = self.body(node.body)
                if body is None:
                    return None
            made = self.settings.get(node.settings)
            if made is None:
                timeout_s, retries, backoff, cache = node.settings
                made = self.settings[node.settings] = NodeSettings(
                    timeout_s, retries, backoff, "never" if cache == "never" else "auto"
                )
            if node.inputs is not None or node.outputs is not None:
                inputs = _by_name(node_type.inputs if node.inputs is None else node.inputs)
                outputs = _by_name(node_type.outputs if node.outputs is None else node.outputs)
            nodes[node.id] = PlanNode(  # positionally: half what keywords cost
                node.id,
                index,
                node_type,
                node.params,
                made,
                inputs,
                outputs,
                node.sources,
                node.successors,
                node.predecessors,
                node.key_material,
                body,
            )
        return Plan(workflow, nodes)


def _by_name(ports: Iterable[Port]) -> dict[str, Port]:
    return {port.name: port for port in ports}

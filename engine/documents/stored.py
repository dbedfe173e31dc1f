"""A compiled plan as stored: what compiling a document made of it (the nodes' ports, sources,
settings and order), so that another process runs or reruns the document without validating
and compiling it again. A stored plan stands for its document only under the node types it was
compiled with: its key (`plan_key`) includes the registry's `signature`."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

import msgspec

from engine.documents.document import Workflow
from engine.documents.plan import Plan, PlanNode, collection_paused
from engine.nodes.registry import NodeRegistry, NodeSettings
from engine.nodes.types import NodeType, Port

__all__ = ["decode_plan", "encode_plan", "plan_key"]

FORMAT = 2  # of the stored form below; part of the key


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


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(list[_Node])


def plan_key(document: str, registry: NodeRegistry) -> str:
    """The key of the plan of a stored document (``document``: its blob's digest) compiled
    with ``registry``'s node types."""
    return hashlib.sha256(f"{FORMAT}:{document}:{registry.signature}".encode()).hexdigest()


def encode_plan(plan: Plan) -> bytes:
    return _encoder.encode(
        [
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
            )
            for node in plan.nodes.values()
        ]
    )


def decode_plan(data: bytes, workflow: Workflow, registry: NodeRegistry) -> Plan | None:
    """The plan ``encode_plan`` stored for ``workflow``; None when it does not fit (a node type
    the registry lacks, a node the document does not have) or the document has bodies (their
    plans are not stored: such a document is compiled)."""
    if workflow.subgraphs:
        return None
    with collection_paused():
        try:
            stored = _decoder.decode(data)
        except msgspec.DecodeError:
            return None
        return _plan(stored, workflow, registry)


def _plan(stored: list[_Node], workflow: Workflow, registry: NodeRegistry) -> Plan | None:
    documented = workflow.nodes
    if len(stored) != len(documented):
        return None
    nodes: dict[str, PlanNode] = {}
    settings: dict[tuple[Any, ...], NodeSettings] = {}
    # Each type's class and, without dynamic ports, its ports, shared by its nodes (no one
    # changes them).
    types: dict[str, tuple[type[NodeType], dict[str, Port], dict[str, Port]]] = {}
    for node in stored:
        kind = node.type
        found = types.get(kind)
        if found is None:
            node_type = registry.get(kind)
            if node_type is None:
                return None
            found = types[kind] = (
                node_type,
                _by_name(node_type.inputs),
                _by_name(node_type.outputs),
            )
        node_type, inputs, outputs = found
        index = node.index
        if not 0 <= index < len(documented) or documented[index].id != node.id:
            return None
        made = settings.get(node.settings)
        if made is None:
            timeout_s, retries, backoff, cache = node.settings
            made = settings[node.settings] = NodeSettings(
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
        )
    return Plan(workflow, nodes)


def _by_name(ports: Iterable[Port]) -> dict[str, Port]:
    return {port.name: port for port in ports}

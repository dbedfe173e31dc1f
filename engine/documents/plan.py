"""An executable plan: the nodes of a validated document with their types, params, settings,
ports and wiring, in topological order (engine/documents/graph.py makes one)."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import msgspec
import networkx as nx

from engine.documents.document import Workflow
from engine.nodes.body import Body
from engine.nodes.registry import NodeSettings
from engine.nodes.types import NodeType, Port, json_schema_port_type

__all__ = ["KEPT_INSTANCE_NODES", "Plan", "PlanNode", "collection_paused"]

# The most nodes of a body's instances a plan keeps made (see `Plan.instance`): a body of 4
# nodes mapped over 1,024 items, about 3 MB (0.7 KB a node).
KEPT_INSTANCE_NODES = 4_096


class PlanNode(msgspec.Struct, eq=False, gc=False):
    """One node of a plan. Not tracked by the collector (it refers to nothing that refers back
    to it): a `map` makes one per node of every item."""

    id: str
    index: int
    node_type: type[NodeType]
    params: dict[str, Any]
    settings: NodeSettings
    inputs: dict[str, Port]
    outputs: dict[str, Port]
    # Input port -> its sources ``(node, port)`` in edge order.
    sources: dict[str, list[tuple[str, str]]] = msgspec.field(default_factory=dict)
    successors: list[str] = msgspec.field(default_factory=list)
    predecessors: list[str] = msgspec.field(default_factory=list)
    # Canonical bytes of type, version and params (and of a body node's body): the fixed part
    # of the cache key.
    key_material: bytes = b""
    # The plan of the body a body node runs (engine/nodes/body.py), else None.
    body: Plan | None = None


@dataclass(slots=True, eq=False)
class Plan:
    workflow: Workflow
    nodes: dict[str, PlanNode]  # in topological order
    # The graph of the nodes' successors, made when first asked for (None: not yet).
    _graph: nx.DiGraph | None = None
    _roles: dict[str, list[PlanNode]] = field(default_factory=dict, init=False, repr=False)
    _position: dict[str, int] | None = field(default=None, init=False, repr=False)
    _special: tuple[frozenset[str], frozenset[str]] | None = field(
        default=None, init=False, repr=False
    )
    _body: Body | None = field(default=None, init=False, repr=False)
    # The nodes of instances of the plan as a body, by path prefix (see `instance`).
    _instances: dict[str, list[PlanNode]] = field(default_factory=dict, init=False, repr=False)
    _instance_nodes: int = field(default=0, init=False, repr=False)

    def instance(self, prefix: str) -> list[PlanNode]:
        """The plan's nodes as the nodes of one instance of it as a body (engine/nodes/body.py),
        under ``prefix`` (``m[3]/``), in order. Made once per prefix, as the plan's own nodes
        are, for the first `KEPT_INSTANCE_NODES`: a map run again makes none (nodes made anew
        cost an item a third again of what its nodes' own work does)."""
        found = self._instances.get(prefix)
        if found is None:
            found = self._relabel(prefix)
            if self._instance_nodes + len(found) <= KEPT_INSTANCE_NODES:
                self._instances[prefix] = found
                self._instance_nodes += len(found)
        return found

    def _relabel(self, prefix: str) -> list[PlanNode]:
        """The nodes under ``prefix``: positionally, which costs half what keywords do."""
        made = []
        for node in self.nodes.values():
            sources = node.sources
            made.append(
                PlanNode(
                    prefix + node.id,
                    node.index,
                    node.node_type,
                    node.params,
                    node.settings,
                    node.inputs,
                    node.outputs,
                    {
                        port: [(prefix + source, out) for source, out in found]
                        for port, found in sources.items()
                    }
                    if sources
                    else {},
                    [prefix + successor for successor in node.successors],
                    [prefix + predecessor for predecessor in node.predecessors],
                    node.key_material,
                    node.body,
                )
            )
        return made

    @property
    def has_bodies(self) -> bool:
        return any(node.body is not None for node in self.nodes.values())

    def body_ports(self) -> Body:
        """The plan's ports as a body: its input and output nodes, by name (document order).
        Made once."""
        if self._body is None:
            self._body = self._make_body_ports()
        return self._body

    def _make_body_ports(self) -> Body:
        inputs = sorted(self.by_role("input"), key=lambda node: node.index)
        outputs = sorted(self.by_role("output"), key=lambda node: node.index)
        return Body(
            inputs=tuple(
                Port(
                    node.params["name"],
                    json_schema_port_type(node.params.get("schema") or {}),
                    required="default" not in node.params,
                    default=node.params.get("default", msgspec.UNSET),
                )
                for node in inputs
            ),
            outputs=tuple(Port(node.params["name"]) for node in outputs),
        )

    @property
    def graph(self) -> nx.DiGraph:
        if self._graph is None:
            graph = nx.DiGraph()
            graph.add_nodes_from(self.nodes)
            graph.add_edges_from(
                (node_id, successor)
                for node_id, node in self.nodes.items()
                for successor in node.successors
            )
            self._graph = graph
        return self._graph

    def downstream(self, node_id: str) -> set[str]:
        """Every node reachable from ``node_id`` (not including it)."""
        return self.with_downstream([node_id]) - {node_id}

    def with_downstream(self, node_ids: Iterable[str]) -> set[str]:
        """The nodes given and every node reachable from them."""
        found = set(node_ids)
        pending = list(found)
        while pending:
            for successor in self.nodes[pending.pop()].successors:
                if successor not in found:
                    found.add(successor)
                    pending.append(successor)
        return found

    def topological(self, node_ids: Iterable[str]) -> list[str]:
        """The nodes given, in the plan's (topological) order."""
        return sorted(node_ids, key=self._positions().__getitem__)

    def _positions(self) -> dict[str, int]:
        if self._position is None:
            self._position = {node_id: index for index, node_id in enumerate(self.nodes)}
        return self._position

    def special(self) -> tuple[frozenset[str], frozenset[str]]:
        """The nodes marked ``cache: never``, and those that read the outside world (their key
        depends on it): what reuse treats apart. Made once."""
        if self._special is None:
            self._special = (
                frozenset(n.id for n in self.nodes.values() if n.settings.cache != "auto"),
                frozenset(n.id for n in self.nodes.values() if n.node_type.reads_outside_world),
            )
        return self._special

    def by_role(self, role: str) -> list[PlanNode]:
        """The nodes of one role (``input``, ``output``…), in topological order (made once)."""
        found = self._roles.get(role)
        if found is None:
            found = self._roles[role] = [n for n in self.nodes.values() if n.node_type.role == role]
        return list(found)

    def layers(self) -> list[list[str]]:
        """Topological generations: the columns of a left-to-right layout."""
        return [sorted(layer) for layer in nx.topological_generations(self.graph)]


@contextlib.contextmanager
def collection_paused() -> Iterator[None]:
    """No cyclic garbage collection meanwhile: building a big plan makes tens of thousands of
    objects that live on, and the collections their making would set off find nothing to free
    (a third of a 10,000-node document's validation)."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()

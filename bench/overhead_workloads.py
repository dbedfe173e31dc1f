"""The engine-overhead benchmark's workloads: trivial node types in a registry of their own,
chains and fans of them with what a bare-asyncio baseline needs to run the same graph, and a
big realistic document for timing validation."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from engine.nodes.registry import NodeRegistry
from engine.nodes.types import NodeContext, NodeType, Port
from nodes import builtin_node_types

# -- trivial node types (registered in the benchmark's own registry) -----------------------------


class SourceNode(NodeType):
    type = "bench_source"
    title = "Bench source"
    params_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {"value": {}},
        "additionalProperties": False,
    }
    outputs = (Port("y"),)

    async def run(self, inputs: dict[str, Any], context: NodeContext) -> dict[str, Any]:
        return {"y": self.params.get("value", 1)}


class PassthroughNode(NodeType):
    type = "passthrough"
    title = "Passthrough"
    inputs = (Port("x"),)
    outputs = (Port("y"),)

    async def run(self, inputs: dict[str, Any], context: NodeContext) -> dict[str, Any]:
        return {"y": inputs["x"]}


class JoinNode(NodeType):
    type = "join"
    title = "Join"
    inputs = (Port("xs", many=True),)
    outputs = (Port("y"),)

    async def run(self, inputs: dict[str, Any], context: NodeContext) -> dict[str, Any]:
        return {"y": inputs["xs"]}


def bench_registry() -> NodeRegistry:
    return NodeRegistry([*builtin_node_types(), SourceNode, PassthroughNode, JoinNode])


# -- workloads ------------------------------------------------------------------------------------


@dataclass
class Workload:
    name: str
    document: dict[str, Any]
    # For the baseline: node -> its predecessors (in edge order) and what the node does.
    predecessors: dict[str, list[str]]
    kinds: dict[str, str]
    last: str
    expected: Any

    @property
    def size(self) -> int:
        return len(self.kinds)


def graph_document(
    name: str, nodes: list[dict[str, Any]], edges: list[tuple[str, str]]
) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "name": name,
        "nodes": nodes,
        "edges": [{"from": source, "to": target} for source, target in edges],
    }


def workload(
    name: str, nodes: list[tuple[str, str]], edges: list[tuple[str, str]], expected: Any
) -> Workload:
    predecessors: dict[str, list[str]] = {node_id: [] for node_id, _ in nodes}
    for source, target in edges:
        predecessors[target.partition(".")[0]].append(source.partition(".")[0])
    typed = [{"id": node_id, "type": kind} for node_id, kind in nodes]
    document = graph_document(name, typed, edges)
    return Workload(name, document, predecessors, dict(nodes), nodes[-1][0], expected)


def chain(size: int) -> Workload:
    """``n0 -> n1 -> ... -> n{size-1}``: one source, then passthroughs."""
    nodes = [("n0", SourceNode.type)] + [(f"n{i}", PassthroughNode.type) for i in range(1, size)]
    edges = [(f"n{i - 1}.y", f"n{i}.x") for i in range(1, size)]
    return workload(f"chain-{size}", nodes, edges, expected=1)


def fan(size: int) -> Workload:
    """One source, ``size - 2`` parallel passthroughs, one join with a `many` port."""
    width = size - 2
    nodes = [("src", SourceNode.type)]
    nodes += [(f"m{i}", PassthroughNode.type) for i in range(width)]
    nodes.append(("join", JoinNode.type))
    edges = [("src.y", f"m{i}.x") for i in range(width)]
    edges += [(f"m{i}.y", "join.xs") for i in range(width)]
    return workload(f"fan-{size}", nodes, edges, expected=[1] * width)


WORKLOADS: dict[str, Callable[[], Workload]] = {
    "chain-40": lambda: chain(40),
    "chain-1000": lambda: chain(1000),
    "fan-1000": lambda: fan(1000),
}


def validation_document(size: int = 10_000) -> dict[str, Any]:
    """A realistic big document: 100 lanes of templates and passthroughs fed by one input,
    joined by an aggregate into an output. Every template is different (as in real work); most
    substitute a variable, one in five also uses a condition and a filter."""
    lanes = 100
    body = size - 3  # input, aggregate, output
    nodes: list[dict[str, Any]] = [
        {
            "id": "topic",
            "type": "input",
            "ui": {"x": 0, "y": 0},
            "params": {"name": "topic", "schema": {"type": "string"}, "default": "bees"},
        }
    ]
    edges: list[tuple[str, str]] = []
    tails: list[str] = []
    for lane in range(lanes):
        length = body // lanes + (1 if lane < body % lanes else 0)
        previous = "topic.value"
        for step in range(length):
            node_id = f"l{lane}_s{step}"
            ui = {"x": 200 * (step + 1), "y": 120 * lane}
            if step % 2 == 0:
                text = f"Lane {lane}, step {step}: rewrite this more plainly.\n\n{{{{ text }}}}"
                if step % 10 == 4:
                    text = (
                        f"Lane {lane}, step {step}: {{% if text %}}tidy up: "
                        "{{ text | trim }}{% else %}say so{% endif %}"
                    )
                params: dict[str, Any] = {"template": text}
                if step % 10 == 0:
                    params["retries"] = 1
                nodes.append({"id": node_id, "type": "template", "params": params, "ui": ui})
                edges.append((previous, f"{node_id}.text"))
                previous = f"{node_id}.text"
            else:
                nodes.append({"id": node_id, "type": PassthroughNode.type, "ui": ui})
                edges.append((previous, f"{node_id}.x"))
                previous = f"{node_id}.y"
        tails.append(previous)
    nodes.append({"id": "join", "type": "aggregate", "params": {"mode": "concat"}})
    edges += [(tail, "join.items") for tail in tails]
    nodes.append({"id": "result", "type": "output", "params": {"name": "text"}})
    edges.append(("join.result", "result.value"))
    return graph_document("validation-10k", nodes, edges)

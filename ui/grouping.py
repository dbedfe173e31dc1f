"""“Group into subgraph”: a selection of nodes becomes a body of the document, run by one
`subgraph` node in their place. An edge from outside into the selection becomes an input of
the body (one per source), an edge out of it an output (one per source port); the edges inside
move with the nodes. The document runs as before."""

from __future__ import annotations

import copy
from typing import Any

__all__ = ["GroupRefused", "group_into_subgraph"]


def group_into_subgraph(
    graph: dict[str, Any], subgraphs: dict[str, Any], chosen: set[str]
) -> str | None:
    """Move the ``chosen`` nodes of ``graph`` into a new body in ``subgraphs``; returns the id
    of the `subgraph` node that runs it (None when nothing was chosen). `GroupRefused` when
    nodes outside the selection lie between nodes in it (the group would be a cycle), or it
    has input or output nodes."""
    moved = [node for node in graph["nodes"] if node["id"] in chosen]
    if not moved:
        return None
    ends = sorted(node["id"] for node in moved if node["type"] in ("input", "output"))
    if ends:
        raise GroupRefused(
            f"{', '.join(ends)}: inputs and outputs stay where they are (they are the graph's "
            "own ports)"
        )
    between = _between(graph, {node["id"] for node in moved})
    if between:
        raise GroupRefused(
            "these nodes cannot be grouped without "
            + ", ".join(sorted(between))
            + ", which lie between them"
        )
    ids = {node["id"] for node in graph["nodes"]}
    name = _fresh("group", set(subgraphs))
    node_id = _fresh("group", ids)
    inside_ids = {node["id"] for node in moved}
    body_nodes = [copy.deepcopy(node) for node in moved]
    body_edges: list[dict[str, str]] = []
    outer_edges: list[dict[str, str]] = []
    inputs: dict[str, str] = {}  # source "node.port" outside -> the body input node's id
    outputs: dict[str, str] = {}  # source "node.port" inside -> the body output's name
    names: set[str] = set()  # of the body's inputs and outputs
    for edge in graph["edges"]:
        source, target = edge["from"], edge["to"]
        source_in, target_in = _node(source) in inside_ids, _node(target) in inside_ids
        if source_in and target_in:
            body_edges.append(dict(edge))
        elif target_in:
            if source not in inputs:
                port = _fresh(_port(target), names)
                names.add(port)
                inputs[source] = _fresh(f"in_{port}", inside_ids)
                inside_ids.add(inputs[source])
                body_nodes.append({"id": inputs[source], "type": "input", "params": {"name": port}})
                outer_edges.append({"from": source, "to": f"{node_id}.{port}"})
            body_edges.append({"from": f"{inputs[source]}.value", "to": target})
        elif source_in:
            if source not in outputs:
                outputs[source] = port = _fresh(_port(source), names)
                names.add(port)
                exit_id = _fresh(f"out_{port}", inside_ids)
                inside_ids.add(exit_id)
                body_nodes.append({"id": exit_id, "type": "output", "params": {"name": port}})
                body_edges.append({"from": source, "to": f"{exit_id}.value"})
            outer_edges.append({"from": f"{node_id}.{outputs[source]}", "to": target})
        else:
            outer_edges.append(dict(edge))
    subgraphs[name] = {"nodes": body_nodes, "edges": body_edges}
    xs = [float((node.get("ui") or {}).get("x", 0)) for node in moved]
    ys = [float((node.get("ui") or {}).get("y", 0)) for node in moved]
    group = {
        "id": node_id,
        "type": "subgraph",
        "params": {"graph": name},
        "ui": {"x": round(sum(xs) / len(xs)), "y": round(sum(ys) / len(ys))},
    }
    graph["nodes"] = [node for node in graph["nodes"] if node["id"] not in chosen] + [group]
    graph["edges"] = outer_edges
    return node_id


class GroupRefused(ValueError):
    """A selection that cannot become one body."""


def _between(graph: dict[str, Any], chosen: set[str]) -> set[str]:
    """The nodes outside ``chosen`` on a path from one chosen node to another."""
    successors: dict[str, set[str]] = {}
    for edge in graph["edges"]:
        successors.setdefault(_node(edge["from"]), set()).add(_node(edge["to"]))
    reached: set[str] = set()  # outside, downstream of the selection
    pending = [n for node in chosen for n in successors.get(node, ()) if n not in chosen]
    while pending:
        node = pending.pop()
        if node not in reached:
            reached.add(node)
            pending += [n for n in successors.get(node, ()) if n not in chosen]
    # Of those, the ones from which a chosen node can be reached.
    return {node for node in reached if _reaches(node, chosen, successors)}


def _reaches(start: str, chosen: set[str], successors: dict[str, set[str]]) -> bool:
    seen, pending = set(), [start]
    while pending:
        node = pending.pop()
        for successor in successors.get(node, ()):
            if successor in chosen:
                return True
            if successor not in seen:
                seen.add(successor)
                pending.append(successor)
    return False


def _node(ref: str) -> str:
    return ref.partition(".")[0]


def _port(ref: str) -> str:
    return ref.partition(".")[2]


def _fresh(base: str, taken: set[str]) -> str:
    """``base``, or ``base_2``, ``base_3``… : the first not in ``taken``."""
    if base not in taken:
        return base
    number = 2
    while f"{base}_{number}" in taken:
        number += 1
    return f"{base}_{number}"

"""Auto-layout: layered, left to right, one column per topological generation of the DAG."""

from __future__ import annotations

from typing import Any

import networkx as nx

COLUMN = 280  # px between columns
ROW = 150  # px between nodes of a column


def layered_positions(document: dict[str, Any]) -> dict[str, dict[str, int]]:
    """A position per node: columns by generation, nodes of a column in their document order."""
    graph = nx.DiGraph()
    order = {node["id"]: index for index, node in enumerate(document["nodes"])}
    graph.add_nodes_from(order)
    for edge in document["edges"]:
        source, target = edge["from"].split(".")[0], edge["to"].split(".")[0]
        if source in order and target in order:
            graph.add_edge(source, target)
    try:
        layers = list(nx.topological_generations(graph))
    except nx.NetworkXUnfeasible:  # a cycle: validation will say so; lay out in order
        layers = [list(order)]
    positions = {}
    for column, layer in enumerate(layers):
        for row, node_id in enumerate(sorted(layer, key=order.__getitem__)):
            positions[node_id] = {"x": 40 + column * COLUMN, "y": 40 + row * ROW}
    return positions

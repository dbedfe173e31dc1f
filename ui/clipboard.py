"""Copy and paste of nodes as changes of the document: what a selection copies, and the nodes
and edges a paste adds (renamed so that no id is taken twice, placed beside the originals)."""

from __future__ import annotations

import copy
from collections.abc import Collection
from typing import Any

OFFSET = 40  # how far right and down a pasted node lands from its original


def copied(document: dict[str, Any], chosen: Collection[str]) -> dict[str, Any]:
    """The chosen nodes and the edges between them."""
    nodes = [copy.deepcopy(n) for n in document["nodes"] if n["id"] in chosen]
    edges = [
        dict(e) for e in document["edges"]
        if e["from"].split(".")[0] in chosen and e["to"].split(".")[0] in chosen
    ]
    return {"nodes": nodes, "edges": edges}


def pasted(
    document: dict[str, Any], clipboard: dict[str, Any]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The nodes and edges pasting ``clipboard`` into ``document`` adds: each node renamed
    ``<id>_<n>`` with the first number free."""
    taken = {node["id"] for node in document["nodes"]}
    renamed: dict[str, str] = {}
    for node in clipboard["nodes"]:
        number, base = 2, node["id"]
        while f"{base}_{number}" in taken:
            number += 1
        renamed[node["id"]] = f"{base}_{number}"
        taken.add(renamed[node["id"]])
    nodes = []
    for node in copy.deepcopy(clipboard["nodes"]):
        position = node.get("ui") or {}
        node["id"] = renamed[node["id"]]
        x, y = position.get("x", 0) + OFFSET, position.get("y", 0) + OFFSET
        node["ui"] = {**position, "x": x, "y": y}
        nodes.append(node)
    edges = []
    for edge in clipboard["edges"]:
        source, source_port = edge["from"].split(".", 1)
        target, target_port = edge["to"].split(".", 1)
        edges.append({
            "from": f"{renamed[source]}.{source_port}",
            "to": f"{renamed[target]}.{target_port}",
        })
    return nodes, edges

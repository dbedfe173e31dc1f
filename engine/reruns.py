"""What a rerun changes: the parent's document with overrides, and why each node will run."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.document import Workflow, from_builtins, to_builtins
from engine.errors import WorkflowInvalid
from engine.issues import Issue, pointer
from nodes.registry import COMMON_PARAMS, NodeRegistry


def override(
    snapshot: dict[str, Any],
    run_id: str,
    from_node: str | None,
    params: Mapping[str, Mapping[str, Any]],
    registry: NodeRegistry,
) -> Workflow:
    """The parent's document with param overrides applied; every unknown name is an issue."""
    document = from_builtins(snapshot)
    data = to_builtins(document)
    nodes = {node["id"]: node for node in data["nodes"]}
    issues = []
    if from_node is not None and from_node not in nodes:
        issues.append(
            Issue(
                "missing_node",
                f"from_node {from_node!r} is not a node of run {run_id}",
                node=from_node,
                path="/from_node",
            )
        )
    for node_id, changes in params.items():
        node = nodes.get(node_id)
        if node is None:
            issues.append(
                Issue(
                    "missing_node",
                    f"node {node_id!r} is not in run {run_id}",
                    node=node_id,
                    path=pointer("params", node_id),
                )
            )
            continue
        known = (
            registry.params_schema(node["type"])["properties"] if node["type"] in registry else {}
        )
        for name, value in changes.items():
            if name not in known:
                names = ", ".join(sorted(known))
                issues.append(
                    Issue(
                        "invalid_params",
                        f"{node['type']} node {node_id!r} has no "
                        f"param {name!r} (its params: {names})",
                        node=node_id,
                        path=pointer("params", node_id, name),
                    )
                )
            node.setdefault("params", {})[name] = value
    if issues:
        raise WorkflowInvalid(issues)
    return from_builtins(data)


def changed_params(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> list[str]:
    """The names of the params that differ between two versions of a node."""
    old_params, new_params = (old or {}).get("params", {}), (new or {}).get("params", {})
    missing = object()
    return sorted(
        key
        for key in {*old_params, *new_params}
        if old_params.get(key, missing) != new_params.get(key, missing)
    )


def reasons(
    old: dict[str, Any], new: dict[str, Any], from_node: str | None, forced: set[str]
) -> dict[str, str]:
    """Why each node of a rerun would execute, as far as the documents tell."""
    before = {node["id"]: node for node in old["nodes"]}
    reasons = {}
    for node in new["nodes"]:
        node_id, previous = node["id"], before.get(node["id"])
        changed = [key for key in changed_params(previous, node) if key not in COMMON_PARAMS]
        if previous is None:
            reasons[node_id] = "new node"
        elif previous["type"] != node["type"]:
            reasons[node_id] = "type changed"
        elif changed:
            reasons[node_id] = "params changed: " + ", ".join(changed)
        elif node_id == from_node:
            reasons[node_id] = "forced: from_node"
        elif node_id in forced:
            reasons[node_id] = f"forced: downstream of {from_node}"
    return reasons

"""The run tree of a workflow, the branch down to a run, and node-by-node diffs of two runs."""

from __future__ import annotations

from typing import Any

from engine.errors import Conflict
from engine.execution.results import NodeState
from engine.runs.reruns import changed_params
from engine.storage.repository import Store

__all__ = ["branch", "diff", "tree"]


async def tree(store: Store, run_id: str, *, owner_id: str | None = None) -> dict[str, Any]:
    """The whole tree ``run_id`` belongs to, from its root."""
    row = await store.run_row(run_id, owner_id=owner_id)
    rows = await store.tree_rows(row.root_run_id)
    nodes: dict[str, dict[str, Any]] = {}
    for each in rows:  # parents are created before their children
        parent = nodes.get(each.parent_run_id) if each.parent_run_id else None
        nodes[each.id] = {
            "id": each.id,
            "status": each.status,
            "created_at": each.created_at,
            "finished_at": each.finished_at,
            "from_node": each.from_node,
            "replay_of": each.replay_of,
            "changed": each.changes,
            "depth": parent["depth"] + 1 if parent else 0,
            "children": [],
        }
        if parent is not None:
            parent["children"].append(nodes[each.id])
    return nodes[row.root_run_id]


async def branch(store: Store, run_id: str, *, owner_id: str | None = None) -> list[str]:
    """The run ids from the root of the tree down to ``run_id``."""
    row = await store.run_row(run_id, owner_id=owner_id)
    parents = {each.id: each.parent_run_id for each in await store.tree_rows(row.root_run_id)}
    path = [run_id]
    while (parent := parents.get(path[-1])) is not None:
        path.append(parent)
    return path[::-1]


async def diff(store: Store, a: str, b: str, *, owner_id: str | None = None) -> dict[str, Any]:
    """Node by node: params changed, output equal or changed, status, duration, tokens."""
    row_a = await store.run_row(a, owner_id=owner_id)
    row_b = await store.run_row(b, owner_id=owner_id)
    same = (row_a.workflow_id is not None and row_a.workflow_id == row_b.workflow_id) or (
        row_a.root_run_id == row_b.root_run_id
    )
    if not same:
        raise Conflict(f"runs {a} and {b} belong to different workflows")
    states_a, states_b = await store.node_states(a), await store.node_states(b)
    params_a = {n["id"]: n for n in (await store.snapshot(row_a))["nodes"]}
    params_b = {n["id"]: n for n in (await store.snapshot(row_b))["nodes"]}
    order = list(params_a) + [node for node in params_b if node not in params_a]
    nodes = []
    for node_id in order:
        old, new = params_a.get(node_id), params_b.get(node_id)
        state_a, state_b = states_a.get(node_id), states_b.get(node_id)
        nodes.append(
            {
                "node": node_id,
                "in": "both" if old and new else ("a" if old else "b"),
                "params_changed": (
                    changed_params(old.get("params", {}), new.get("params", {}))
                    if old and new
                    else []
                ),
                "status": [_field(state_a, "status"), _field(state_b, "status")],
                "output": _compare_outputs(state_a, state_b),
                "duration_ms": [_field(state_a, "duration_ms"), _field(state_b, "duration_ms")],
                "usage": [_field(state_a, "usage"), _field(state_b, "usage")],
            }
        )
    changed_inputs = sorted(
        k for k in {*row_a.inputs, *row_b.inputs} if row_a.inputs.get(k) != row_b.inputs.get(k)
    )
    return {"a": a, "b": b, "inputs_changed": changed_inputs, "nodes": nodes}


def _field(state: NodeState | None, name: str) -> Any:
    return getattr(state, name) if state is not None else None


def _compare_outputs(a: NodeState | None, b: NodeState | None) -> str:
    if a is None or b is None or a.output is None or b.output is None:
        return "missing"
    return "equal" if (a.digests or a.output) == (b.digests or b.output) else "changed"

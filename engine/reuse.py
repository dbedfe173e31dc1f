"""What a run takes over from earlier runs instead of executing: which results may stand for a
node's, taking them over before anything runs, and why a node executes when it is not."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping
from datetime import datetime
from typing import NamedTuple

from engine.graph import Plan, PlanNode
from engine.results import REUSABLE, NodeState


class TakenOver(NamedTuple):
    origins: dict[str, str]  # node -> the run that computed the result taken over
    left: set[str]  # the nodes not taken over


async def take_over(
    plan: Plan,
    states: Mapping[str, NodeState],
    reuse: Mapping[str, NodeState],
    *,
    trusted: Collection[str],
    force: Collection[str],
    key_if_ready: Callable[[PlanNode], Awaitable[str | None]],
    at: datetime,
) -> TakenOver:
    """Take over, in ``states``, every reusable result whose upstream is taken over too.

    A ``trusted`` node (type, params and edges as in the run its prior comes from) whose
    predecessors are all taken over is taken over on its prior's key alone; the key of any
    other node is made by ``key_if_ready`` (None when it could not run). Nodes already done
    stay as they are. The cost per node taken over is a few lookups."""
    origins: dict[str, str] = {}
    left: set[str] = set()  # nodes seen and not taken over (the order is topological)
    for node_id, node in plan.nodes.items():
        prior = reuse.get(node_id)
        if prior is None or not left.isdisjoint(node.predecessors) or states[node_id].done:
            left.add(node_id)
            continue
        if node_id in trusted and not node.node_type.reads_outside_world:
            key = prior.cache_key  # same material, same inputs
        else:
            key = await key_if_ready(node)
        if key is not None and reusable(node, key, prior, force):
            states[node_id].take_over(prior, at)
            origins[node_id] = prior.origin_run_id or ""
        else:
            left.add(node_id)
    return TakenOver(origins, left)


def reusable(node: PlanNode, key: str | None, prior: NodeState, force: Collection[str]) -> bool:
    """Whether ``prior``, a node's state in an earlier run, may stand for its result in this
    run, where its cache key is ``key``."""
    return (
        prior.cache_key == key
        and prior.status in REUSABLE
        and prior.origin_run_id is not None
        and node.settings.cache == "auto"
        and node.id not in force
    )


def reason_to_execute(
    node: PlanNode,
    prior: NodeState | None,
    states: Mapping[str, NodeState],
    *,
    force: Collection[str],
    reasons: Mapping[str, str],
    reuse: Mapping[str, NodeState],
) -> str:
    """Why a node of a run that may reuse results executes instead, in words."""
    if node.id in force:
        return reasons.get(node.id, "forced")
    if node.settings.cache == "never":
        return "cache: never"
    if node.id in reasons:
        return reasons[node.id]
    if prior is None or prior.status not in REUSABLE:
        return "no earlier result" if reuse else ""
    changed = [
        predecessor
        for predecessor in node.predecessors
        if predecessor not in reuse or states[predecessor].digests != reuse[predecessor].digests
    ]
    if changed:
        return "upstream changed: " + ", ".join(changed)
    if node.node_type.role == "input":
        return f"input changed: {node.params['name']}"
    return "cache key changed"

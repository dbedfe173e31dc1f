"""What a run takes over from earlier runs instead of executing: which results may stand for a
node's, taking them over before anything runs, and why a node executes when it is not."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping
from datetime import datetime

from engine.graph import Plan, PlanNode
from engine.results import REUSABLE, NodeState, reused_from


async def take_over(
    plan: Plan,
    states: dict[str, NodeState],
    waiting: dict[str, int],
    reuse: Mapping[str, NodeState],
    *,
    trusted: Collection[str],
    force: Collection[str],
    key_if_ready: Callable[[PlanNode], Awaitable[str | None]],
    at: datetime,
) -> dict[str, list[str]]:
    """Fill ``states`` (empty) with a state for every node, in plan order: every reusable result
    whose upstream is taken over too is taken over, the other nodes are left to run. Fill
    ``waiting`` (empty) with how many predecessors each node left to run waits for. Returns
    the nodes taken over by the run that computed their result.

    A ``trusted`` node (type, params and edges as in the run its prior comes from) whose
    predecessors are all taken over is taken over on its prior's key alone; the key of any
    other node is made by ``key_if_ready`` (None when it could not run), in plan order. Only
    those nodes, and the nodes left to run, cost more than making their new state."""
    # What no key can make reusable, and everything downstream of it, is left to run.
    unusable = {
        node_id
        for node_id, prior in reuse.items()
        if prior.status not in REUSABLE or not prior.origin_run_id or not prior.cache_key
    }
    never, outside = plan.special()
    nodes = plan.nodes.keys()
    left = plan.with_downstream((nodes - reuse.keys()) | ((unusable | never | set(force)) & nodes))
    reasons = _Reasons()
    states |= {
        node_id: NodeState()
        if node_id in left
        else reuse[node_id].taken_over(reasons[reuse[node_id].origin_run_id or ""], at)
        for node_id in plan.nodes
    }
    # The nodes whose key must be made again, in order: each needs what it depends on settled.
    untrusted = ((nodes - trusted) | outside) - left
    for node_id in plan.topological(untrusted):
        node = plan.nodes[node_id]
        if node_id in left:
            continue  # downstream of an earlier one that is left to run
        if left.isdisjoint(node.predecessors):
            key = await key_if_ready(node)
            if key is not None and reusable(node, key, reuse[node_id], force):
                continue
        for newly in plan.with_downstream([node_id]) - left:
            states[newly] = NodeState()
            left.add(newly)
    for node_id in plan.topological(left):
        waiting[node_id] = sum(1 for p in plan.nodes[node_id].predecessors if p in left)
    taken: dict[str, list[str]] = {}
    for node_id, state in states.items():
        if node_id not in left:
            origin = state.origin_run_id or ""
            (taken.get(origin) or taken.setdefault(origin, [])).append(node_id)
    return taken


class _Reasons(dict[str, str]):
    """The reason of a result taken over, by the run it comes from (made once per run)."""

    def __missing__(self, origin: str) -> str:
        reason = self[origin] = reused_from(origin)
        return reason


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

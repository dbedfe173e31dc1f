"""What a rerun takes over from earlier runs before anything runs: every result that may stand
for its node's whose upstream is taken over too (one node's own decision: `take_prior`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping

from engine.documents.plan import Plan, PlanNode
from engine.execution.lifecycle import reusable
from engine.execution.results import REUSABLE, NodeState
from engine.nodes.body import body_of

__all__ = ["take_over"]


async def take_over(
    plan: Plan,
    states: dict[str, NodeState],
    waiting: dict[str, int],
    reuse: Mapping[str, NodeState],
    *,
    changed: Collection[str] | None,
    force: Collection[str],
    key_if_ready: Callable[[PlanNode], Awaitable[str | None]],
) -> dict[str, list[str]]:
    """Fill ``states`` (empty) with a state for every node, in plan order: every reusable result
    whose upstream is taken over too is taken over (its state is its prior, held as it is:
    `RunStates` shows it as taken over), the other nodes are left to run. Fill
    ``waiting`` (empty) with how many predecessors each node left to run waits for. Returns
    the nodes taken over by the run that computed their result.

    A node not ``changed`` (type, params and edges as in the run its prior comes from; None:
    any node may have) whose predecessors are all taken over is taken over on its prior's key
    alone; the key of any other node is made by ``key_if_ready`` (None when it could not run),
    in plan order. Only those nodes, and the nodes left to run, cost more than a look-up."""
    # What no key can make reusable, and everything downstream of it, is left to run (the
    # plan's nodes only: the reuse also holds the nodes of bodies, a map's thousands).
    nodes = plan.nodes.keys()
    unusable = {
        node_id
        for node_id in nodes
        if (prior := reuse.get(node_id)) is None
        or prior.status not in REUSABLE
        or not prior.origin_run_id
        or not prior.cache_key
    }
    never, outside = plan.special()
    left = plan.with_downstream(unusable | ((never | set(force)) & nodes))
    # Every other node is taken over, for now: its state, and the nodes by origin.
    taken: dict[str, list[str]] = {}
    for node_id in nodes:
        if node_id in left:
            states[node_id] = NodeState()
            continue
        prior = states[node_id] = reuse[node_id]
        origin = prior.origin_run_id or ""
        found = taken.get(origin)
        if found is None:
            found = taken[origin] = []
        found.append(node_id)
    settled = len(left)
    # The nodes whose key must be made again, in order: each needs what it depends on settled.
    suspect = ((nodes if changed is None else set(changed)) | outside) - left
    for node_id in plan.topological(suspect):
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
    if len(left) > settled:  # some were left to run after all
        kept = {origin: [n for n in found if n not in left] for origin, found in taken.items()}
        taken = {origin: found for origin, found in kept.items() if found}
    _take_bodies(plan, states, reuse, taken)
    return taken


def _take_bodies(
    plan: Plan,
    states: dict[str, NodeState],
    reuse: Mapping[str, NodeState],
    taken: dict[str, list[str]],
) -> None:
    """A body node taken over brings the nodes of its body with it, as they ended."""
    bodies = {
        node_id
        for found in taken.values()
        for node_id in found
        if plan.nodes[node_id].body is not None
    }
    if not bodies:
        return
    for node_id, prior in reuse.items():
        if "/" in node_id and body_of(node_id) in bodies:
            states[node_id] = prior
            taken.setdefault(prior.origin_run_id or "", []).append(node_id)

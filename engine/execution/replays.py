"""Replays (SPEC §17): in a replay, a recordable node (one that talks to a model or the outside
world) takes the replayed run's recorded output while its cache key is the recorded one; on a
miss it fails saying what changed, or executes (`on_miss: call`). One step of the node
lifecycle (engine/execution/lifecycle.py)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from engine.documents.plan import PlanNode
from engine.execution.reasons import Reason
from engine.execution.results import REUSABLE, NodeState
from engine.storage.keys import now

__all__ = ["Replay", "replayed"]


@dataclass(frozen=True, slots=True, eq=False)
class Replay:
    """A replay of run ``run_id`` (SPEC §17): its node states (``recorded``), which recordable
    nodes take when their cache key is the recorded one; on a miss they fail (``on_miss``
    ``fail``) or execute (``call``)."""

    run_id: str
    recorded: Mapping[str, NodeState]
    on_miss: str = "fail"


def replayed(
    node: PlanNode, state: NodeState, replay: Replay, states: Mapping[str, NodeState]
) -> bool:
    """In a replay, take the recorded output of a recordable node whose cache key is the
    recorded one (True); otherwise fail it saying what changed (True: it is settled), or with
    ``on_miss: call`` say why it executes (False)."""
    recorded = replay.recorded.get(node.id)
    if recorded is not None and recorded.cache_key == state.cache_key and (
        recorded.status in REUSABLE
    ):
        state.take_over(recorded, now())
        state.because(Reason("replayed", (replay.run_id,)))
        return True
    changed = tuple(
        predecessor
        for predecessor in node.predecessors
        if (was := replay.recorded.get(predecessor)) is None
        or states[predecessor].digests != was.digests
    )
    why = Reason("replay_missed", changed)
    state.because(why)
    if replay.on_miss == "call":
        return False
    what = "no recorded result" if recorded is None else why.words
    state.fail(f"replay of run {replay.run_id}: {what}", now())
    return True

"""Why a node of a run executed, was reused or was skipped: a small typed value (`Reason`) whose
code is what the engine decides by, and whose words (`Reason.words`) are what users read."""

from __future__ import annotations

from typing import Literal

import msgspec

__all__ = ["BLOCKING", "Reason", "ReasonCode"]

ReasonCode = Literal[
    # reused: the result of the run ``details[0]`` stands (same cache key)
    "reused",
    # executes: what the documents or the keys tell
    "params_changed",  # details: the params that differ from the parent's
    "body_changed",  # details: the nodes of its body given new params (by path)
    "upstream_changed",  # details: the predecessors whose output changed
    "input_changed",  # details: the run input's name
    "forced",  # details: the option that forced it (``from_node``), if any
    "forced_downstream",  # details: the rerun's from_node, upstream of this node
    "cache_never",
    "no_earlier_result",
    "key_changed",
    # a replay (SPEC §17): a recordable node's recorded output stands (details: the run
    # replayed), or it does not (details: what changed: predecessors, or nothing known)
    "replayed",
    "replay_missed",
    # a model node answered with a fallback model (details: the model, the first model's error)
    "fallback",
    # skipped
    "upstream_failed",  # details: the failed (or cancelled) predecessor
    "upstream_skipped",  # details: the skipped source, as node.port
    "sources_skipped",  # details: the `many` port every source of which was skipped
]

# Reasons of a skipped node whose own successors count it as failed: a failure stops every
# descendant, while a skip (a condition's branch not taken) only skips what needs its value.
BLOCKING: frozenset[ReasonCode] = frozenset({"upstream_failed"})


class Reason(msgspec.Struct, frozen=True, gc=False, array_like=True):
    """A reason: its code and the names it concerns (nodes, params, a run's id)."""

    code: ReasonCode
    details: tuple[str, ...] = ()

    @property
    def words(self) -> str:
        """The reason as users read it: ``params changed: template``."""
        listed = ", ".join(self.details)
        match self.code:
            case "reused":
                return f"reused from run {listed}"
            case "params_changed":
                return f"params changed: {listed}"
            case "body_changed":
                return f"body changed: {listed}"
            case "upstream_changed":
                return f"upstream changed: {listed}"
            case "input_changed":
                return f"input changed: {listed}"
            case "forced":
                return f"forced: {listed}" if self.details else "forced"
            case "forced_downstream":
                return f"forced: downstream of {listed}"
            case "cache_never":
                return "cache: never"
            case "no_earlier_result":
                return "no earlier result"
            case "key_changed":
                return "cache key changed"
            case "replayed":
                return f"replayed from run {listed}"
            case "replay_missed":
                changed = f"upstream changed: {listed}" if self.details else "cache key changed"
                return f"not as recorded ({changed})"
            case "fallback":
                model, error = (*self.details, "", "")[:2]
                return f"fallback: {model} after {error}"
            case "upstream_failed":
                return f"upstream failed: {listed}"
            case "upstream_skipped":
                return f"upstream skipped: {listed}"
            case "sources_skipped":
                return f"every source of {listed} was skipped"

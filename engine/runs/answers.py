"""Answering a node that waits for a person (SPEC §16): the answer checked against what the node
asks, made the node's result, and the run resumed from there (`RunService.answer`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.documents.plan import Plan
from engine.errors import AnswerInvalid, Conflict, NodeFailure
from engine.execution.lifecycle import check_output, gather
from engine.execution.reasons import Reason
from engine.execution.results import NodeState
from engine.storage.keys import now

__all__ = ["answered_state", "timed_out_state"]


def answered_state(
    plan: Plan, node_id: str, waiting: NodeState, answer: Any, states: Mapping[str, NodeState]
) -> NodeState:
    """The waiting node's result once ``answer`` comes (`AnswerInvalid` when it does not fit):
    its cache key is the one it waited with, so a rerun with the same inputs reuses it."""
    node = plan.nodes.get(node_id)
    if node is None:
        raise Conflict(f"node {node_id} is not in the run's workflow")
    gathered = gather(node, states)
    inputs = {} if isinstance(gathered, Reason) else gathered[0]
    output = node.node_type.answered(node.params, answer, inputs)
    try:
        digests = check_output(node, output)
    except NodeFailure as exc:
        raise AnswerInvalid(exc.detail) from None
    return _ended(waiting, status="succeeded", output=output, digests=digests)


def timed_out_state(waiting: NodeState, after: str) -> NodeState:
    """The waiting node's result when nobody answered in time: failed."""
    ended = _ended(waiting, status="failed", output=None, digests=None)
    ended.error = f"no answer within {after}"
    return ended


def _ended(
    waiting: NodeState,
    *,
    status: Any,
    output: dict[str, Any] | None,
    digests: dict[str, str] | None,
) -> NodeState:
    finished = now()
    started = waiting.started_at or finished
    return NodeState(
        status=status,
        reason=waiting.reason,
        reason_code=waiting.reason_code,
        cache_key=waiting.cache_key,
        output=output,
        digests=digests,
        attempt=waiting.attempt,
        started_at=waiting.started_at,
        finished_at=finished,
        duration_ms=(finished - started).total_seconds() * 1000,
        origin_run_id=waiting.origin_run_id,
    )

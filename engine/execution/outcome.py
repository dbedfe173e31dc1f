"""How a run ended, from its nodes' final states: its outputs, status and error. The same for a
run executed in-process and one executed on workers."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from engine.documents.plan import Plan
from engine.execution.events import RunStatus
from engine.execution.results import REUSABLE, NodeState

__all__ = ["run_outputs", "run_status"]


def run_outputs(plan: Plan, states: Mapping[str, NodeState]) -> dict[str, Any]:
    """The value each output node received, by its name (outputs that got none are left out)."""
    outputs = {}
    for node in plan.by_role("output"):
        state = states.get(node.id)
        if state is not None and state.status in REUSABLE and state.output is not None:
            outputs[node.params["name"]] = state.output["value"]
    return outputs


def run_status(
    nodes: Iterable[str],
    states: Mapping[str, NodeState],
    *,
    cancelled: bool,
    fatal: str | None = None,
) -> tuple[RunStatus, str | None]:
    """Failed (naming the first failed of ``nodes``, in plan order, or the ``fatal`` error that
    ended the run), cancelled, or succeeded; with the error to show. Results taken over from
    earlier runs never failed: ``nodes`` may leave them out."""
    if fatal:
        return "failed", fatal
    for node_id in nodes:
        state = states.get(node_id)
        if state is not None and state.status == "failed":
            return "failed", f"node {node_id} failed: {state.error}"
    if cancelled:
        return "cancelled", "cancelled"
    return "succeeded", None

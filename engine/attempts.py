"""Executing one node in-process: attempt after attempt, as its settings say, until it succeeds
or fails for good; each attempt announced."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from engine.announcer import Announcer
from engine.errors import NodeFailure
from engine.graph import PlanNode
from engine.node_data import run_once
from engine.results import NodeState
from engine.storage.keys import now

if TYPE_CHECKING:
    from nodes.base import NodeContext, NodeType


async def execute_node(
    node: PlanNode,
    state: NodeState,
    instance: NodeType,
    inputs: dict[str, Any],
    context: NodeContext,
    *,
    events: Announcer,
) -> None:
    """Run the node until it succeeds, or fails with no retries left (retryable failures are
    retried after ``retry_backoff_s``, doubling); ``state`` holds the outcome."""
    settings = node.settings
    attempt = 0
    while True:
        attempt += 1
        context.attempt = state.attempt = attempt
        state.status, state.started_at = "running", now()
        events.node_started(node.id, attempt)
        started = time.perf_counter()
        try:
            output, digests = await run_once(node, instance, inputs, context)
        except NodeFailure as exc:
            error, retryable = exc.detail, exc.retryable
        else:
            state.status, state.origin_run_id = "succeeded", context.run_id
            state.output, state.digests, state.usage = output, digests, context.usage
            state.finished_at = now()
            state.duration_ms = (time.perf_counter() - started) * 1000
            return
        state.duration_ms = (time.perf_counter() - started) * 1000
        if retryable and attempt <= settings.retries:
            events.retrying(node.id, attempt, error)
            await asyncio.sleep(settings.retry_backoff_s * 2 ** (attempt - 1))
            continue
        fail(state, error)
        return


def fail(state: NodeState, error: str) -> None:
    state.status, state.error, state.finished_at = "failed", error, now()

"""The state of a run and of each of its nodes, as stored and as shown (SPEC §6.1)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

import msgspec

from engine.events import NodeStatus, RunStatus


class NodeState(msgspec.Struct, kw_only=True):
    status: NodeStatus = "pending"
    reason: str = ""
    cache_key: str | None = None
    output: dict[str, Any] | None = None
    error: str | None = None
    attempt: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_ms: float | None = None
    usage: dict[str, int] | None = None
    # Digest of each output value: what downstream cache keys are made of. Not shown in the API.
    digests: dict[str, str] | None = None
    # The run that computed the output (this run, or the one a cached result came from).
    origin_run_id: str | None = None

    @property
    def done(self) -> bool:
        return self.status in ("succeeded", "cached", "failed", "skipped", "cancelled")


class RunResult(msgspec.Struct, kw_only=True):
    id: str
    status: RunStatus
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    nodes: dict[str, NodeState]
    started_at: datetime
    finished_at: datetime | None = None
    error: str | None = None


class PriorResult(msgspec.Struct, kw_only=True, frozen=True):
    """A committed node result that a run may take over instead of executing the node."""

    run_id: str  # the run that computed it
    cache_key: str
    output: dict[str, Any]
    digests: dict[str, str]
    reason: str


class ResultStore(Protocol):
    """Where node results are committed; the executor awaits it before announcing a result."""

    async def node_finished(self, run_id: str, node_id: str, state: NodeState) -> None: ...

    async def nodes_finished(self, run_id: str, states: Mapping[str, NodeState]) -> None:
        """Several results at once (reused ones, say), in one commit."""
        ...

"""The state of a run and of each of its nodes, as stored and as shown (SPEC §6.1)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

import msgspec

from engine.events import RunStatus
from engine.records import NodeRecord


class NodeState(NodeRecord, kw_only=True):
    """A node's state as the engine keeps it: what users see, plus the bookkeeping below."""

    # Digest of each output value: what downstream cache keys are made of. Not shown in the API.
    digests: dict[str, str] | None = None
    # The run that computed the output (this run, or the one a cached result came from).
    origin_run_id: str | None = None

    @property
    def done(self) -> bool:
        return self.status in ("succeeded", "cached", "failed", "skipped", "cancelled")

    def record(self) -> NodeRecord:
        """The state as users see it (SPEC §6.1), without the engine's bookkeeping."""
        return NodeRecord(
            status=self.status,
            reason=self.reason,
            cache_key=self.cache_key,
            output=self.output,
            error=self.error,
            attempt=self.attempt,
            started_at=self.started_at,
            finished_at=self.finished_at,
            duration_ms=self.duration_ms,
            usage=self.usage,
        )


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

    async def nodes_reused(self, run_id: str, origins: Mapping[str, str]) -> None:
        """Nodes taken over from earlier runs: node id -> the run that computed the result.
        A store may keep just these references; the results themselves are already stored."""
        ...

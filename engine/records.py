"""Stored things as users see them (SPEC §6.1): what the API answers and `--json` prints."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from engine.execution.events import NodeStatus, RunStatus
from engine.execution.reasons import ReasonCode

__all__ = ["NodeRecord", "Page", "RunRecord", "WorkflowRecord"]

# Records and states are plain data that never refer back to themselves: with ``gc=False`` the
# cyclic garbage collector does not track them, so a run's thousands of them cost it nothing.


class NodeRecord(msgspec.Struct, kw_only=True, gc=False):
    status: NodeStatus = "pending"
    reason: str = ""  # why it ran, was reused or was skipped, in words (`Reason.words`)
    reason_code: ReasonCode | None = None  # the same as a code (`Reason.code`)
    cache_key: str | None = None
    output: dict[str, Any] | None = None
    error: str | None = None
    attempt: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_ms: float | None = None
    usage: dict[str, Any] | None = None
    # A body node's instances (items, iterations) ended, failed of those, and known so far.
    progress: dict[str, int] | None = None


class RunRecord(msgspec.Struct, kw_only=True, gc=False):
    id: str
    workflow_id: str | None
    workflow_version: int | None
    workflow_name: str
    parent_run_id: str | None
    root_run_id: str
    from_node: str | None
    changes: dict[str, Any]
    trigger: str = "api"
    replay_of: str | None = None
    pinned_at: datetime | None = None
    status: RunStatus
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None
    nodes: dict[str, NodeRecord] = {}


class WorkflowRecord(msgspec.Struct, kw_only=True):
    id: str
    version: int
    name: str
    created_at: datetime
    updated_at: datetime
    document: dict[str, Any]


class Page(msgspec.Struct, kw_only=True):
    items: list[Any]
    next_cursor: str | None = None

"""Request and response bodies of the API that are not engine records (msgspec Structs)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar.params import QueryParameter

from engine.records import RunRecord, WorkflowRecord
from engine.storage.keys import CURSOR_PATTERN
from server.problems import ErrorItem

MAX_PAGE = 200
MAX_INT = 2**31 - 1  # what fits an SQL integer column
Limit = Annotated[int, QueryParameter(ge=1, le=MAX_PAGE, description="Items per page")]
Cursor = Annotated[
    str | None,
    QueryParameter(pattern=CURSOR_PATTERN, description="`next_cursor` of the previous page"),
]


class SavedWorkflow(WorkflowRecord, kw_only=True):
    """A saved workflow and the issues that keep it from running (none: it can run)."""

    issues: list[ErrorItem] = msgspec.field(default_factory=list)


class LastRun(msgspec.Struct, kw_only=True):
    id: str
    status: str
    created_at: datetime


class WorkflowSummary(msgspec.Struct, kw_only=True):
    id: str
    name: str
    version: int
    created_at: datetime
    updated_at: datetime
    description: str = ""
    tags: list[str] = msgspec.field(default_factory=list)
    node_count: int = 0
    last_run: LastRun | None = None


class WorkflowPage(msgspec.Struct, kw_only=True):
    items: list[WorkflowSummary]
    next_cursor: str | None = None


class VersionItem(msgspec.Struct, kw_only=True):
    version: int
    created_at: datetime
    saved_by: str | None = None  # the user who saved it (None in open local mode)


class VersionPage(msgspec.Struct, kw_only=True):
    items: list[VersionItem]
    next_cursor: str | None = None


class Validation(msgspec.Struct, kw_only=True):
    valid: bool
    errors: list[ErrorItem]


class Pan(msgspec.Struct, forbid_unknown_fields=True):
    x: float = 0.0
    y: float = 0.0


class ViewState(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The editor's view of a workflow: never part of the document or of execution."""

    zoom: Annotated[float, msgspec.Meta(gt=0, le=100)] = 1.0
    pan: Pan = msgspec.field(default_factory=Pan)
    selection: list[str] = []
    panels: list[str] = []


class StartRun(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    inputs: dict[str, Any] = {}
    # Answer when the run has finished (201) instead of at once (202).
    wait: bool = False


class Rerun(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    from_node: str | None = None
    params: dict[str, dict[str, Any]] = {}
    inputs: dict[str, Any] = {}
    wait: bool = False


class Resume(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    wait: bool = False


class RunPage(msgspec.Struct, kw_only=True):
    items: list[RunRecord]
    next_cursor: str | None = None


class TreeNode(msgspec.Struct, kw_only=True):
    id: str
    status: str
    created_at: datetime
    finished_at: datetime | None
    from_node: str | None
    changed: dict[str, Any]
    depth: int
    # The run this one replays (SPEC §17), when it is a replay.
    replay_of: str | None = None
    children: list[TreeNode]


class DiffNode(msgspec.Struct, kw_only=True):
    node: str
    # "both", or "a" / "b" for a node only one of the runs has.
    in_: str = msgspec.field(name="in")
    params_changed: list[str]
    status: list[str | None]
    output: str
    duration_ms: list[float | None]
    usage: list[dict[str, Any] | None]


class Diff(msgspec.Struct, kw_only=True):
    a: str
    b: str
    inputs_changed: list[str]
    nodes: list[DiffNode]

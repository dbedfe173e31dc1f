"""A run's start as one value: what it executes, with what, where it comes from and what it may
take over. The run service makes one; launching, executing and storing the run all read it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.documents.plan import Plan
from engine.execution.reasons import Reason
from engine.execution.replays import Replay
from engine.execution.results import NodeState

__all__ = ["RunStart", "Snapshot"]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The exact document a run runs, as stored: a stored document (``blob``, its digest) with
    param ``overrides``; ``document`` is the blob row to store with the run when it may not be
    stored yet."""

    blob: str
    overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    document: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RunStart:
    """Everything a run starts with.

    ``reuse`` offers earlier results by node id, as their states in the runs that computed them:
    one is taken over, without executing the node, when its cache key is unchanged and the node
    is neither in ``force`` nor marked ``cache: never``; ``reasons`` says why nodes execute when
    the documents already tell (``params changed: …``); ``changed`` names the nodes whose type,
    params or edges may differ from those of the run ``reuse`` comes from (None: any node).
    A resumed run (``resuming``) keeps the node results it committed before (``done``) and
    numbers its events after ``first_seq``."""

    id: str
    plan: Plan
    inputs: Mapping[str, Any]
    snapshot: Snapshot | None = None
    workflow_id: str | None = None
    workflow_version: int | None = None
    owner_id: str | None = None
    parent_run_id: str | None = None
    root_run_id: str | None = None  # None: the run is a root
    from_node: str | None = None
    changes: Mapping[str, Any] = field(default_factory=dict)
    reuse: Mapping[str, NodeState] = field(default_factory=dict)
    force: frozenset[str] = frozenset()
    reasons: Mapping[str, Reason] = field(default_factory=dict)
    changed: frozenset[str] | None = None
    resuming: bool = False
    done: Mapping[str, NodeState] = field(default_factory=dict)
    first_seq: int = 0
    # Waiting nodes answered now (SPEC §16), in their answered state: committed and announced
    # first, then what they unblock executes. ``done`` holds the nodes still waiting.
    answered: Mapping[str, NodeState] = field(default_factory=dict)
    # What started the run (SPEC §16): `api`, `manual`, `batch:<id>`, `mcp`, ...
    trigger: str = "api"
    # A replay of an earlier run (SPEC §17): every node executes again, recordable ones take
    # that run's records.
    replay: Replay | None = None
    # Whether the caller waits for the run's end: its row may then go with its first commit.
    caller_waits: bool = False

    @property
    def replay_of(self) -> str | None:
        return self.replay.run_id if self.replay is not None else None

    def __post_init__(self) -> None:
        if self.reuse and self.done:
            raise ValueError("a run either reuses earlier results or resumes, not both")

    @property
    def root(self) -> str:
        return self.root_run_id or self.id

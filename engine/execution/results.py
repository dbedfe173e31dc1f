"""The state of a run and of each of its nodes, as stored and as shown (SPEC §6.1)."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

import msgspec
from msgspec.structs import replace

from engine.execution.events import AnyEvent, RunStatus
from engine.execution.reasons import BLOCKING, Reason
from engine.records import NodeRecord

__all__ = ["REUSABLE", "NodeState", "ResultStore", "RunResult", "RunStates", "reused_from"]

REUSABLE = ("succeeded", "cached")  # the states whose result a later run may take over
_FAILED = ("failed", "cancelled")


def reused_from(run_id: str) -> str:
    """The reason, in words, of a node whose result was taken over from run ``run_id``."""
    return Reason("reused", (run_id,)).words


class NodeState(NodeRecord, kw_only=True, gc=False):
    """A node's state as the engine keeps it: what users see, plus the bookkeeping below."""

    # Digest of each output value: what downstream cache keys are made of. Not shown in the API.
    digests: dict[str, str] | None = None
    # The run that computed the output (this run, or the one a cached result came from). A
    # finished run's states are what a rerun of it may take over (`REUSABLE` ones).
    origin_run_id: str | None = None

    @property
    def done(self) -> bool:
        return self.status in ("succeeded", "cached", "failed", "skipped", "cancelled")

    @property
    def blocks(self) -> bool:
        """Whether the node's successors are skipped as after a failure: it failed, was
        cancelled, or was skipped because of a failure upstream."""
        return self.status in _FAILED or self.reason_code in BLOCKING

    def because(self, reason: Reason) -> None:
        self.reason, self.reason_code = reason.words, reason.code

    def skip(self, reason: Reason, at: datetime) -> None:
        self.status, self.finished_at = "skipped", at
        self.because(reason)

    def fail(self, error: str, at: datetime) -> None:
        self.status, self.error, self.finished_at = "failed", error, at

    def cancel(self, at: datetime) -> None:
        self.status, self.finished_at = "cancelled", at

    def taken_over(self, reason: str, at: datetime | None) -> NodeState:
        """A new state holding this one's result (a node's state in an earlier run), taken over
        at ``at`` for the reason ``reused_from(self.origin_run_id)``: its key, output, digests
        and origin, with nothing of how it was computed."""
        return replace(
            self,
            status="cached",
            reason=reason,
            reason_code="reused",
            error=None,
            attempt=0,
            started_at=at,
            finished_at=at,
            duration_ms=0.0,
            usage=None,
        )

    @classmethod
    def reused(
        cls,
        origin: str,
        *,
        cache_key: str | None,
        output: dict[str, Any] | None,
        digests: dict[str, str] | None,
        at: datetime | None = None,
    ) -> NodeState:
        """The state of a node whose result, computed by the run ``origin``, a run took over
        (at ``at``)."""
        return cls(
            status="cached",
            reason=reused_from(origin),
            reason_code="reused",
            cache_key=cache_key,
            output=output,
            started_at=at,
            finished_at=at,
            duration_ms=0.0,
            digests=digests,
            origin_run_id=origin,
        )

    def take_over(self, prior: NodeState, at: datetime) -> None:
        """Hold ``prior``'s result (a node's state in an earlier run), taken over at ``at``."""
        self.status = "cached"
        self.because(Reason("reused", (prior.origin_run_id or "",)))
        self.cache_key, self.output, self.digests = prior.cache_key, prior.output, prior.digests
        self.origin_run_id = prior.origin_run_id
        self.started_at = self.finished_at = at
        self.duration_ms = 0.0

    def record(self) -> NodeRecord:
        """The state as users see it (SPEC §6.1), without the engine's bookkeeping."""
        return NodeRecord(
            status=self.status,
            reason=self.reason,
            reason_code=self.reason_code,
            cache_key=self.cache_key,
            output=self.output,
            error=self.error,
            attempt=self.attempt,
            started_at=self.started_at,
            finished_at=self.finished_at,
            duration_ms=self.duration_ms,
            usage=self.usage,
            progress=self.progress,
        )


class RunStates(Mapping[str, NodeState]):
    """A run's node states by node. The run holds a result it took over as the state it has
    in the run it comes from (``held``: what a later rerun may take over in turn) and shows it
    as taken over at ``at``, made only when asked for: a rerun of a big workflow takes over
    nearly all of it, and most callers want the records alone (`records`). ``own`` names the
    nodes the run settled itself (None: all)."""

    def __init__(
        self,
        held: dict[str, NodeState],
        own: Collection[str] | None = None,
        at: datetime | None = None,
    ) -> None:
        self.held = held
        self._own = own
        self._at = at
        self._shown: dict[str, NodeState] = {}
        self._reasons: dict[str, str] = {}  # by the run a result comes from

    def _taken(self, node_id: str) -> bool:
        return self._own is not None and node_id not in self._own

    def _reason(self, state: NodeState) -> str:
        origin = state.origin_run_id or ""
        reason = self._reasons.get(origin)
        if reason is None:
            reason = self._reasons[origin] = reused_from(origin)
        return reason

    def __getitem__(self, node_id: str) -> NodeState:
        state = self.held[node_id]
        if not self._taken(node_id):
            return state
        shown = self._shown.get(node_id)
        if shown is None:
            shown = self._shown[node_id] = state.taken_over(self._reason(state), self._at)
        return shown

    def __iter__(self) -> Iterator[str]:
        return iter(self.held)

    def __len__(self) -> int:
        return len(self.held)

    def records(self) -> dict[str, NodeRecord]:
        """Every state as users see it: ``self[node].record()`` for each node, made directly."""
        if self._own is None:
            return {node_id: state.record() for node_id, state in self.held.items()}
        own, records = self._own, {}
        shown: dict[str | None, NodeRecord] = {}  # by origin: all but the key and output
        for node_id, state in self.held.items():
            if node_id in own:
                records[node_id] = state.record()
                continue
            template = shown.get(state.origin_run_id)
            if template is None:
                template = shown[state.origin_run_id] = NodeRecord(  # as `taken_over` makes it
                    status="cached",
                    reason=self._reason(state),
                    reason_code="reused",
                    started_at=self._at,
                    finished_at=self._at,
                    duration_ms=0.0,
                )
            records[node_id] = replace(template, cache_key=state.cache_key, output=state.output)
        return records


class RunResult(msgspec.Struct, kw_only=True):
    id: str
    status: RunStatus
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    nodes: RunStates
    started_at: datetime
    finished_at: datetime | None = None
    error: str | None = None


class ResultStore(Protocol):
    """Where a run's results and events are committed. The executor awaits each result's commit
    before announcing it, and commits the run's end (with its last result, when that is the
    only one still to commit) before announcing that."""

    def event(self, event: AnyEvent) -> None:
        """Store ``event`` with the next commit."""

    async def node_finished(
        self, run_id: str, node_id: str, state: NodeState, events: Sequence[AnyEvent] = ()
    ) -> None:
        """Commit the node's result (with ``events``, when given: the announcement of a node
        that waits, stored with it)."""

    async def run_finished(
        self,
        run_id: str,
        *,
        last: tuple[str, NodeState] | None,
        events: Sequence[AnyEvent],
        status: RunStatus,
        outputs: dict[str, Any],
        error: str | None,
        finished_at: datetime | None,
        last_seq: int,
        reused: Mapping[str, list[str]],
        reusable: Mapping[str, NodeState] | None,
    ) -> None:
        """Commit how the run ended, its ``last`` node result and ``events`` at once, with the
        results it took over while it went on (``reused``: nodes by the run that made their
        result; the nodes of bodies), by reference. ``reusable`` is every node's state as the
        run holds it, for what a rerun of the run may take over; None while the run waits."""

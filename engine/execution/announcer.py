"""Turns what the executor does into numbered events for its listeners."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import structlog

from engine.execution.events import (
    AnyEvent,
    Listener,
    NodeCompleted,
    NodeFailed,
    NodeSkipped,
    NodeStarted,
    NodeToken,
    NodeWaiting,
    RunFinished,
    RunStarted,
    RunStatus,
)
from engine.execution.results import NodeState

__all__ = ["Announcer"]

log = structlog.get_logger("nodeloom.events")


class Announcer:
    """Numbers a run's events (``seq``) and hands them to the ``store`` (to be stored with its
    next commit) and to every listener; a listener that raises is logged and skipped, never
    allowed to break the run. Between `hold` and `release`, events are only kept: the caller
    commits them itself, then releases them to the listeners."""

    def __init__(
        self,
        run_id: str,
        listeners: Iterable[Listener],
        first_seq: int = 0,
        store: Listener | None = None,
    ) -> None:
        self.run_id = run_id
        self.listeners = list(listeners)
        self.seq = first_seq
        self._store = store
        self._held: list[AnyEvent] | None = None
        self._any = bool(self.listeners) or store is not None  # whether events are made at all

    def _next(self) -> int:
        self.seq += 1
        return self.seq

    def hold(self) -> list[AnyEvent]:
        """Keep the events emitted from now on (in the list returned) until `release`."""
        self._held = []
        return self._held

    def release(self) -> None:
        """Hand the events kept since `hold` to the listeners (the caller has stored them)."""
        held, self._held = self._held or [], None
        for event in held:
            self._deliver(event)

    def discard(self) -> None:
        """Forget the events kept since `hold` (they were not stored)."""
        self._held = None

    def emit(self, event: AnyEvent) -> None:
        if self._held is not None:
            self._held.append(event)
            return
        if self._store is not None:
            self._store(event)
        self._deliver(event)

    def _deliver(self, event: AnyEvent) -> None:
        for listener in self.listeners:
            try:
                listener(event)
            except Exception:
                log.exception(
                    "event listener failed", run_id=self.run_id, event_type=type(event).__name__
                )

    def run_started(self, workflow: str, node_count: int, reused: dict[str, list[str]]) -> None:
        self.emit(
            RunStarted(
                run_id=self.run_id,
                seq=self._next(),
                workflow=workflow,
                node_count=node_count,
                reused=reused,
            )
        )

    def run_finished(self, status: RunStatus, outputs: dict[str, Any], error: str | None) -> None:
        self.emit(
            RunFinished(
                run_id=self.run_id, seq=self._next(), status=status, outputs=outputs, error=error
            )
        )

    def node_started(self, node: str, attempt: int) -> None:
        if self._any:
            self.emit(NodeStarted(run_id=self.run_id, seq=self._next(), node=node, attempt=attempt))

    def retrying(self, node: str, attempt: int, error: str) -> None:
        self.emit(
            NodeFailed(
                run_id=self.run_id,
                seq=self._next(),
                node=node,
                attempt=attempt,
                error=error,
                will_retry=True,
            )
        )

    def waiting(self, node: str, question: dict[str, Any]) -> NodeWaiting:
        """The event of a node that waits for an answer, numbered but not emitted: the caller
        stores it with the node's state, then hands it on (`stored`)."""
        return NodeWaiting(run_id=self.run_id, seq=self._next(), node=node, question=question)

    def stored(self, event: AnyEvent) -> None:
        """Hand an event the caller has stored itself to the listeners."""
        if self._held is not None:
            self._held.append(event)
        else:
            self._deliver(event)

    def token_emitter(self, node: str) -> Callable[[str], None]:
        def emit_token(text: str) -> None:
            self.emit(NodeToken(run_id=self.run_id, seq=self._next(), node=node, text=text))

        return emit_token

    def result(self, node: str, state: NodeState) -> None:
        """The event for a node's final state: completed (or cached), skipped or failed."""
        if not self._any:
            return
        if state.status == "skipped":
            self.emit(
                NodeSkipped(
                    run_id=self.run_id,
                    seq=self._next(),
                    node=node,
                    reason=state.reason,
                    reason_code=state.reason_code,
                )
            )
        elif state.status == "failed":
            self.emit(
                NodeFailed(
                    run_id=self.run_id,
                    seq=self._next(),
                    node=node,
                    attempt=state.attempt,
                    error=state.error or "",
                )
            )
        else:
            self.emit(
                NodeCompleted(
                    run_id=self.run_id,
                    seq=self._next(),
                    node=node,
                    status=state.status,  # type: ignore[arg-type]
                    cache_key=state.cache_key or "",
                    reason=state.reason,
                    reason_code=state.reason_code,
                    output=state.output or {},
                    duration_ms=state.duration_ms or 0.0,
                    usage=state.usage,
                )
            )

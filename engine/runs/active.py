"""A run executing in this process: its execution, the task driving it, and what callers do
with it (wait for it, cancel it, look at it as it stands)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

from engine.documents.plan import Plan
from engine.execution.executor import Execution
from engine.execution.results import NodeState, RunResult
from engine.records import RunRecord
from engine.storage.repository import run_record
from engine.storage.tables import RunRow

__all__ = ["ActiveRun", "Answerer"]

# What makes the state of a node answered while its run executes: from the plan, the node's
# waiting state and the run's states.
Answerer = Callable[[Plan, NodeState, Mapping[str, NodeState]], NodeState]


class ActiveRun:
    """A run executing in this process (a `RunHandle`)."""

    task: asyncio.Task[RunRecord]

    def __init__(self, row: RunRow, execution: Execution) -> None:
        self.id = row.id
        self.row = row
        self.execution = execution

    def record(self) -> RunRecord:
        """The run as it is now."""
        return run_record(self.row, self.execution.run_states())

    def unstored(self, owner_id: str | None) -> RunRecord | None:
        if owner_id not in (None, self.row.owner_id):
            return None
        return self.record()

    def finished(self, result: RunResult) -> RunRecord:
        """The run as it ended with ``result``."""
        row = self.row
        row.status, row.outputs, row.error = result.status, result.outputs, result.error
        row.finished_at = result.finished_at
        return run_record(row, result.nodes)

    async def wait(self) -> RunRecord:
        return await asyncio.shield(self.task)

    def answer(self, node_id: str, make: Answerer) -> bool | None:
        execution = self.execution
        waiting = execution.waiting_state(node_id)
        if waiting is None:
            return None
        return execution.answer(node_id, make(execution.plan, waiting, execution.states))

    def cancel(self) -> None:
        self.execution.cancel()

    def interrupt(self) -> None:
        """Stop executing it here, to be resumed later."""
        self.execution.interrupt()

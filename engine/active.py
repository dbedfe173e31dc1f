"""A run executing in this process: its execution, the task driving it, and what callers do
with it (wait for it, cancel it, look at it as it stands)."""

from __future__ import annotations

import asyncio

from engine.executor import Execution
from engine.records import RunRecord
from engine.storage.repository import run_record
from engine.storage.tables import RunRow


class ActiveRun:
    """A run executing in this process."""

    def __init__(self, row: RunRow, execution: Execution) -> None:
        self.id = row.id
        self.row: RunRow | None = row
        self.execution = execution
        self.task: asyncio.Task[RunRecord] | None = None

    def record(self) -> RunRecord:
        """The run as it is now."""
        assert self.row is not None
        return run_record(self.row, self.execution.run_states())

    async def wait(self) -> RunRecord:
        assert self.task is not None
        return await asyncio.shield(self.task)

    def cancel(self) -> None:
        self.execution.cancel()

    def interrupt(self) -> None:
        """Stop executing it here, to be resumed later."""
        self.execution.interrupt()

"""Stopping what a worker executes for a run that was cancelled: its node tasks by run, told at
once by a NOTIFY the worker LISTENs for, and found by asking when that connection is down."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Collection
from typing import Any, TypeVar

import asyncpg  # type: ignore[import-untyped]
import structlog

from engine.distributed.scheduler import CANCEL_CHANNEL
from engine.errors import describe

__all__ = ["RECONNECT_S", "Cancelled", "RunningNodes"]

log = structlog.get_logger("nodeloom.worker")
T = TypeVar("T")
RECONNECT_S = 2.0


class Cancelled(Exception):
    """The node's run was cancelled while this worker executed it."""


class RunningNodes:
    """The tasks a worker runs for each run; cancelling a run cancels them."""

    def __init__(self) -> None:
        self._tasks: dict[str, set[asyncio.Task[Any]]] = {}

    @property
    def runs(self) -> Collection[str]:
        return self._tasks.keys()

    async def cancellable(self, run_id: str, work: Awaitable[T]) -> T:
        """Await ``work`` in a task that a cancellation of the run cancels (`Cancelled`)."""
        task = asyncio.ensure_future(work)
        running = self._tasks.setdefault(run_id, set())
        running.add(task)
        try:
            return await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if task.cancelled() and not (current is not None and current.cancelling()):
                raise Cancelled from None
            raise
        finally:
            running.discard(task)
            if not running:
                self._tasks.pop(run_id, None)

    def cancel(self, run_id: str) -> None:
        for task in self._tasks.get(run_id, ()):
            task.cancel()

    async def listen(
        self, dsn: str, stop: asyncio.Event, check_s: float, errors: tuple[type[BaseException], ...]
    ) -> None:
        """Cancel a run's tasks as soon as its cancel is notified, on a LISTEN connection of
        its own (checked every ``check_s``, made again when lost) until ``stop`` is set."""
        while not stop.is_set():
            try:
                connection = await asyncpg.connect(dsn)
            except errors as exc:
                log.warning("cannot LISTEN for cancels; asking instead", error=describe(exc))
            else:
                try:
                    await connection.add_listener(CANCEL_CHANNEL, self._heard)
                    await _until(stop, check_s, connection.is_closed)
                finally:
                    with contextlib.suppress(*errors):
                        await connection.close(timeout=2)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), RECONNECT_S)

    def _heard(self, connection: Any, pid: int, channel: str, run_id: str) -> None:
        self.cancel(run_id)


async def _until(stop: asyncio.Event, check_s: float, done: Callable[[], bool]) -> None:
    while not stop.is_set() and not done():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), check_s)

"""Live fan-out of a run's events (and a batch's progress) to any number of subscribers.

The run service calls `LiveRuns.publish` as one of a run's listeners. Each run executing in this
process has a channel that keeps every event it has seen, so a subscriber arriving late gets the
events it missed (even those the writer has not committed yet) and then the live ones, from one
queue it awaits: nothing polls. The channel is dropped once the run's task is over, by which time
every event is in the database.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from engine.execution.events import AnyEvent
from engine.runs.launch import RunHandle

T = TypeVar("T")
_END = object()


@dataclass(eq=False)
class Channel(Generic[T]):
    """What one producer has said so far, and a queue per subscriber for what it says next."""

    history: list[T] = field(default_factory=list)
    queues: set[asyncio.Queue[object]] = field(default_factory=set)
    closed: bool = False

    def publish(self, item: T) -> None:
        self.history.append(item)
        for queue in self.queues:
            queue.put_nowait(item)

    def close(self) -> None:
        self.closed = True
        for queue in self.queues:
            queue.put_nowait(_END)

    def subscribe(self) -> Subscription[T]:
        """Everything said so far, then (iterating) whatever comes next until the channel closes."""
        queue: asyncio.Queue[object] = asyncio.Queue()
        if self.closed:
            queue.put_nowait(_END)
        self.queues.add(queue)
        return Subscription(self, list(self.history), queue)


@dataclass(eq=False)
class Subscription(Generic[T]):
    channel: Channel[T]
    past: list[T]
    queue: asyncio.Queue[object]

    async def next(self) -> T | None:
        """The next item; None once the channel is closed."""
        item = await self.queue.get()
        if item is _END:
            self.queue.put_nowait(_END)
            return None
        return item  # type: ignore[return-value]

    async def live(self) -> AsyncIterator[T]:
        """What was said before subscribing, then each new item until the channel closes."""
        for earlier in self.past:
            yield earlier
        while (item := await self.next()) is not None:
            yield item

    def close(self) -> None:
        self.channel.queues.discard(self.queue)


class Channels(Generic[T]):
    """Channels by key (a run id, a batch id)."""

    def __init__(self) -> None:
        self._channels: dict[str, Channel[T]] = {}

    def open(self, key: str) -> Channel[T]:
        channel = self._channels.get(key)
        if channel is None:
            channel = self._channels[key] = Channel()
        return channel

    def get(self, key: str) -> Channel[T] | None:
        return self._channels.get(key)

    def drop(self, key: str) -> None:
        channel = self._channels.pop(key, None)
        if channel is not None:
            channel.close()

    def __len__(self) -> int:
        return len(self._channels)


class LiveRuns(Channels[AnyEvent]):
    """The channels of the runs executing in this process."""

    def publish(self, event: AnyEvent) -> None:
        """A run listener: every event of every run started with it."""
        self.open(event.run_id).publish(event)

    def launched(self, handle: RunHandle) -> None:
        """A run observer: keep each launched run's channel until the run is over."""
        self.follow(handle.id, handle.task)

    def follow(self, run_id: str, task: asyncio.Future[Any] | None) -> None:
        """Keep the run's channel until its task is over (its events are stored by then)."""
        self.open(run_id)
        if task is None or task.done():
            self.drop(run_id)
        else:
            task.add_done_callback(lambda _: self.drop(run_id))

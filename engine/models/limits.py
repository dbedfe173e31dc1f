"""Per-model request limits for models served elsewhere: requests started per minute."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable

__all__ = ["WINDOW_S", "RateLimiter"]

WINDOW_S = 60.0


class RateLimiter:
    """At most ``per_minute`` acquisitions in any 60 seconds; callers beyond that wait, in
    order, for the oldest one to leave the window."""

    def __init__(
        self,
        per_minute: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.per_minute = per_minute
        self._clock = clock
        self._sleep = sleep
        self._started: deque[float] = deque()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        async with self._lock:  # first come, first served
            now = self._clock()
            while self._started and now - self._started[0] >= WINDOW_S:
                self._started.popleft()
            if len(self._started) >= self.per_minute:
                await self._sleep(WINDOW_S - (now - self._started[0]))
                self._started.popleft()  # the oldest has now left the window
            self._started.append(self._clock())

"""Limits on password sign-ins: failures counted per user name and per client address over a
sliding window (the same for names that exist and names that do not), and a bound on how many
argon2 checks run at once, so a flood of wrong passwords neither guesses far nor takes the CPU
the other requests need."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

__all__ = ["Busy", "SignInLimits"]


class Busy(Exception):
    """Too many sign-ins are waiting for a password check already."""


class SignInLimits:
    def __init__(
        self,
        *,
        per_user: int = 5,
        per_address: int = 20,
        window_s: float = 60.0,
        checks_at_once: int = 1,
        waiting_at_most: int = 32,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_user = per_user
        self.per_address = per_address
        self.window_s = window_s
        self.clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._checks = asyncio.Semaphore(checks_at_once)
        self._waiting = 0
        self._waiting_at_most = waiting_at_most

    @staticmethod
    def _keys(user: str, address: str) -> tuple[str, str]:
        return f"user:{user.strip().casefold()}", f"address:{address}"

    def retry_after(self, user: str, address: str) -> float | None:
        """Seconds until this user name from this address may try again; None: now."""
        moment = self.clock()
        wait = 0.0
        limits = (self.per_user, self.per_address)
        for key, limit in zip(self._keys(user, address), limits, strict=True):
            failures = self._recent(key, moment)
            if failures is not None and len(failures) >= limit:
                wait = max(wait, failures[-limit] + self.window_s - moment)
        return wait if wait > 0 else None

    def failed(self, user: str, address: str) -> None:
        moment = self.clock()
        if len(self._failures) > 100_000:
            self._forget_old(moment)
        for key in self._keys(user, address):
            self._failures.setdefault(key, deque()).append(moment)

    def attempt(self, user: str, address: str) -> float | None:
        """Counts an attempt as failed before its password is checked, so that attempts in
        flight together are limited as well; the seconds to wait when it may not be made."""
        wait = self.retry_after(user, address)
        if wait is None:
            self.failed(user, address)
        return wait

    def succeeded(self, user: str, address: str) -> None:
        """The attempt was right after all: the name's failures are forgotten, and the address
        is not held to this one."""
        user_key, address_key = self._keys(user, address)
        self._failures.pop(user_key, None)
        failures = self._failures.get(address_key)
        if failures:
            failures.pop()

    def withdraw(self, user: str, address: str) -> None:
        """The attempt was never checked (`Busy`): it does not count."""
        for key in self._keys(user, address):
            failures = self._failures.get(key)
            if failures:
                failures.pop()

    @asynccontextmanager
    async def checking(self) -> AsyncIterator[None]:
        """A turn at checking a password; `Busy` when too many are waiting for one."""
        if self._waiting >= self._waiting_at_most:
            raise Busy
        self._waiting += 1
        try:
            async with self._checks:
                yield
        finally:
            self._waiting -= 1

    def _recent(self, key: str, moment: float) -> deque[float] | None:
        failures = self._failures.get(key)
        if failures is None:
            return None
        while failures and failures[0] <= moment - self.window_s:
            failures.popleft()
        if not failures:
            del self._failures[key]
            return None
        return failures

    def _forget_old(self, moment: float) -> None:
        for key in list(self._failures):
            self._recent(key, moment)

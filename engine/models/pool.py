"""Loaded models, kept least-recently-used first within a memory budget."""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable

import structlog

from engine.models.base import LoadedModel
from engine.models.errors import ModelTooLarge
from engine.models.memory import format_size

__all__ = ["ModelPool"]

log = structlog.get_logger("nodeloom.models")


class ModelPool:
    """Keeps models loaded between uses. Loading one that does not fit beside the others first
    unloads idle ones, least recently used first; when the memory is held by models that are
    generating, it waits for them to finish. A model larger than the whole budget is refused."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self._models: OrderedDict[str, LoadedModel] = OrderedDict()
        self._users: dict[str, int] = {}
        self._loading: dict[str, int] = {}  # name -> memory reserved while it loads
        self._changed = asyncio.Condition()

    def __contains__(self, name: object) -> bool:
        return name in self._models

    def memory(self, name: str) -> int | None:
        """The memory a loaded model was given, or None when it is not loaded."""
        model = self._models.get(name)
        return None if model is None else model.memory

    @property
    def loaded(self) -> list[str]:
        """Loaded models, least recently used first."""
        return list(self._models)

    @property
    def used(self) -> int:
        return sum(model.memory for model in self._models.values()) + sum(self._loading.values())

    @contextlib.asynccontextmanager
    async def use(
        self, name: str, memory: int, load: Callable[[], Awaitable[LoadedModel]]
    ) -> AsyncIterator[LoadedModel]:
        """The model ``name``, loaded with ``load`` (needing ``memory`` bytes) unless it is."""
        model = await self._acquire(name, memory, load)
        try:
            yield model
        finally:
            async with self._changed:
                self._users[name] -= 1
                self._changed.notify_all()

    async def _acquire(
        self, name: str, memory: int, load: Callable[[], Awaitable[LoadedModel]]
    ) -> LoadedModel:
        async with self._changed:
            while True:
                model = self._models.get(name)
                if model is not None:
                    self._models.move_to_end(name)
                    self._users[name] += 1
                    return model
                if name not in self._loading:
                    if memory > self.budget:
                        raise ModelTooLarge(
                            f"model {name} needs about {format_size(memory)}, more than the "
                            f"model memory budget of {format_size(self.budget)}"
                        )
                    self._unload_idle(memory)
                    if self.used + memory <= self.budget:
                        break
                await self._changed.wait()  # for a load to finish or a model to be released
            self._loading[name] = memory
        try:
            model = await load()
        except BaseException:
            async with self._changed:
                del self._loading[name]
                self._changed.notify_all()
            raise
        async with self._changed:
            del self._loading[name]
            self._models[name] = model
            self._users[name] = 1
            self._changed.notify_all()
        return model

    def _unload_idle(self, needed: int) -> None:
        for name in list(self._models):
            if self.used + needed <= self.budget:
                return
            if self._users[name] == 0:
                self._unload(name)

    def _unload(self, name: str) -> None:
        model = self._models.pop(name)
        del self._users[name]
        log.info("model unloaded", model=name, freed=format_size(model.memory))
        model.close()

    async def close(self) -> None:
        """Unload every model (each finishes what it is doing first)."""
        async with self._changed:
            for name in list(self._models):
                self._unload(name)

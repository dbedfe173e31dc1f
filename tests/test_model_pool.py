"""The model pool with fake models: which idle model is unloaded for room, and waiting for a
busy one to finish rather than unloading it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from engine.models import ModelTooLarge
from engine.models.base import Completion, GenerationRequest, OnText
from engine.models.pool import ModelPool


class FakeModel:
    def __init__(self, name: str, memory: int, closed: list[str]) -> None:
        self.name, self.memory, self._closed = name, memory, closed

    async def generate(self, request: GenerationRequest, on_text: OnText) -> Completion:
        raise NotImplementedError

    def close(self) -> None:
        self._closed.append(self.name)


async def test_pool_unloads_least_recently_used_idle_models() -> None:
    closed: list[str] = []
    pool = ModelPool(budget=100)

    def loader(name: str, memory: int) -> Any:
        async def load() -> FakeModel:
            return FakeModel(name, memory, closed)

        return load

    async with pool.use("a", 40, loader("a", 40)):
        pass
    async with pool.use("b", 40, loader("b", 40)):
        pass
    async with pool.use("a", 40, loader("a", 40)):  # already loaded: a is now the most recent
        pass
    assert pool.loaded == ["b", "a"]
    async with pool.use("c", 50, loader("c", 50)):
        assert closed == ["b"]
        assert pool.loaded == ["a", "c"]
    with pytest.raises(ModelTooLarge, match="needs about"):
        async with pool.use("d", 101, loader("d", 101)):
            pass
    await pool.close()
    assert sorted(closed) == ["a", "b", "c"]


async def test_pool_waits_for_busy_models_to_finish() -> None:
    closed: list[str] = []
    pool = ModelPool(budget=100)
    release = asyncio.Event()
    order: list[str] = []

    async def load_a() -> FakeModel:
        return FakeModel("a", 80, closed)

    async def load_b() -> FakeModel:
        return FakeModel("b", 80, closed)

    async def hold_a() -> None:
        async with pool.use("a", 80, load_a):
            order.append("a in use")
            await release.wait()
        order.append("a released")

    async def use_b() -> None:
        async with pool.use("b", 80, load_b):
            order.append("b in use")

    holder = asyncio.create_task(hold_a())
    await asyncio.sleep(0)
    user = asyncio.create_task(use_b())
    await asyncio.sleep(0.05)
    assert order == ["a in use"]  # b waits: a is generating and there is no room for both
    release.set()
    await asyncio.gather(holder, user)
    assert order == ["a in use", "a released", "b in use"]
    assert closed == ["a"]
    await pool.close()

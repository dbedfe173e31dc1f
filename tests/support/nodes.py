"""The test node types, defined once: they sleep, fail, count and stream on demand.

`test_registry` holds the built-in node types and `sleep`, `flaky` and `stream` (the executor,
run, worker and CLI tests); `api_test_registry` adds `ticker` (the API tests)."""

from __future__ import annotations

import asyncio
import time
from typing import Any, ClassVar

from engine.errors import NodeFailure
from engine.nodes.registry import NodeRegistry
from engine.nodes.types import NodeContext, NodeType, Port
from tests.support.engine import builtin_registry


class Sleep(NodeType):
    """Waits ``seconds``, records when it ran, and passes ``x`` on (or answers ``label``)."""

    type = "sleep"
    title = "Sleep"
    params_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {"seconds": {"type": "number"}, "label": {"type": "string"}},
    }
    inputs = (Port("x", required=False, default=None),)
    outputs = (Port("y"),)
    spans: ClassVar[dict[str, tuple[float, float]]] = {}
    executions: ClassVar[list[str]] = []

    async def run(self, inputs: dict[str, Any], context: NodeContext) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        started = loop.time()
        Sleep.executions.append(context.node_id)
        await asyncio.sleep(self.params.get("seconds", 0))
        Sleep.spans[context.node_id] = (started, loop.time())
        return {"y": inputs.get("x") if "label" not in self.params else self.params["label"]}


class Flaky(NodeType):
    """Fails its first ``failures`` attempts (per node id), then answers ``"ok"``."""

    type = "flaky"
    title = "Flaky"
    params_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {"failures": {"type": "integer"}, "retryable": {"type": "boolean"}},
    }
    inputs = (Port("x", required=False, default=None),)
    outputs = (Port("y"),)
    attempts: ClassVar[dict[str, int]] = {}

    async def run(self, inputs: dict[str, Any], context: NodeContext) -> dict[str, Any]:
        count = Flaky.attempts[context.node_id] = Flaky.attempts.get(context.node_id, 0) + 1
        if count <= self.params.get("failures", 1_000_000):
            raise NodeFailure(
                f"attempt {count} failed", retryable=self.params.get("retryable", True)
            )
        return {"y": "ok"}


async def numbered_tokens(
    context: NodeContext,
    stem: str,
    count: int,
    pause_s: float,
    stamps: list[float] | None = None,
) -> str:
    """Emits ``count`` tokens ``{stem}0 {stem}1 …``, each ``pause_s`` after the last (the first
    ``pause_s`` after the start), noting in ``stamps`` when each left; returns them joined."""
    words = []
    for index in range(count):
        await asyncio.sleep(pause_s)
        words.append(f"{stem}{index} ")
        if stamps is not None:
            stamps.append(time.perf_counter())
        context.emit_token(words[-1])
    return "".join(words)


class Stream(NodeType):
    """Streams tokens. With ``text``: each of its words, ``delay`` seconds after each, answering
    ``text``. With ``words``: ``word0 word1 …``, ``delay_s`` seconds before each, answering them
    joined. ``prompt`` is read by neither (a slot for an upstream node)."""

    type = "stream"
    title = "Stream"
    params_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {
            "text": {"type": "string"},
            "delay": {"type": "number", "minimum": 0},
            "words": {"type": "integer"},
            "delay_s": {"type": "number"},
        },
    }
    inputs = (Port("prompt", "string", required=False, default=""),)
    outputs = (Port("text", "string"),)

    async def run(self, inputs: dict[str, Any], context: NodeContext) -> dict[str, Any]:
        if "words" in self.params:
            text = await numbered_tokens(
                context, "word", self.params["words"], self.params.get("delay_s", 0)
            )
            return {"text": text}
        for word in self.params["text"].split():
            context.emit_token(word)
            await asyncio.sleep(self.params.get("delay", 0))
        return {"text": self.params["text"]}


class Ticker(NodeType):
    """Emits ``count`` tokens ``tick0 tick1 …``, ``pause_s`` apart, noting when each left (in
    `emitted`, by run), for the live-event latency tests; answers ``prompt:`` and the ticks."""

    type = "ticker"
    title = "Ticker"
    params_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {"count": {"type": "integer"}, "pause_s": {"type": "number"}},
    }
    inputs = (Port("prompt", required=False, default=""),)
    outputs = (Port("text", "string"),)
    emitted: ClassVar[dict[str, list[float]]] = {}

    async def run(self, inputs: dict[str, Any], context: NodeContext) -> dict[str, Any]:
        stamps = Ticker.emitted.setdefault(context.run_id, [])
        ticks = await numbered_tokens(
            context,
            "tick",
            self.params.get("count", 3),
            self.params.get("pause_s", 0.05),
            stamps,
        )
        return {"text": f"{inputs.get('prompt', '')}:" + ticks}


def test_registry() -> NodeRegistry:
    """The built-in node types with `Sleep`, `Flaky` and `Stream`, their records cleared."""
    Sleep.spans.clear()
    Sleep.executions.clear()
    Flaky.attempts.clear()
    registry = builtin_registry()
    for node_type in (Sleep, Flaky, Stream):
        registry.register(node_type)
    return registry


test_registry.__test__ = False  # type: ignore[attr-defined]


class Spend(NodeType):
    """Reports the usage its params give (``model``, ``prompt_tokens``, ``completion_tokens``,
    ``cost``), as a model call would: for the usage reports."""

    type = "spend"
    title = "Spend"
    params_schema: ClassVar[dict[str, Any]] = {"type": "object"}
    inputs = (Port("x", required=False, default=None),)
    outputs = (Port("y"),)

    async def run(self, inputs: dict[str, Any], context: NodeContext) -> dict[str, Any]:
        context.usage = dict(self.params)
        return {"y": inputs.get("x")}


def api_test_registry() -> NodeRegistry:
    """`test_registry` with `Ticker` and `Spend`."""
    registry = test_registry()
    registry.register(Ticker)
    registry.register(Spend)
    return registry

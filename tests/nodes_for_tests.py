"""Small node types for executor tests: they sleep, fail, count and stream on demand."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from engine.errors import NodeFailure
from engine.nodes.registry import NodeRegistry
from engine.nodes.types import NodeContext, NodeType, Port
from tests.support.engine import builtin_registry


class Sleep(NodeType):
    """Waits ``seconds``, records when it ran, and passes ``x`` on."""

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


class Stream(NodeType):
    """Emits each word of ``text`` as a token, ``delay`` seconds apart."""

    type = "stream"
    title = "Stream"
    params_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {"text": {"type": "string"}, "delay": {"type": "number", "minimum": 0}},
    }
    outputs = (Port("text", "string"),)

    async def run(self, inputs: dict[str, Any], context: NodeContext) -> dict[str, Any]:
        for word in self.params["text"].split():
            context.emit_token(word)
            await asyncio.sleep(self.params.get("delay", 0))
        return {"text": self.params["text"]}


def test_registry() -> NodeRegistry:
    Sleep.spans.clear()
    Sleep.executions.clear()
    Flaky.attempts.clear()
    registry = builtin_registry()
    for node_type in (Sleep, Flaky, Stream):
        registry.register(node_type)
    return registry


test_registry.__test__ = False  # type: ignore[attr-defined]

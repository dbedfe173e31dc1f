"""Node types for the API tests: the executor tests' ones, plus a node that streams tokens with
pauses and records when it generated each (for the live-event latency test)."""

from __future__ import annotations

import asyncio
import time
from typing import Any, ClassVar

from engine.nodes.registry import NodeRegistry
from engine.nodes.types import NodeContext, NodeType, Port
from tests.nodes_for_tests import test_registry


class Ticker(NodeType):
    """Emits ``count`` tokens ``tick0 tick1 …``, ``pause_s`` apart, noting when each left."""

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
        words = [f"tick{i} " for i in range(self.params.get("count", 3))]
        for word in words:
            await asyncio.sleep(self.params.get("pause_s", 0.05))
            stamps.append(time.perf_counter())
            context.emit_token(word)
        return {"text": f"{inputs.get('prompt', '')}:" + "".join(words)}


def api_test_registry() -> NodeRegistry:
    registry = test_registry()
    registry.register(Ticker)
    return registry

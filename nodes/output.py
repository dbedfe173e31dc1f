"""`output`: names a value as one of the run's outputs."""

from __future__ import annotations

from typing import Any, ClassVar

from engine.nodes.types import NodeContext, NodeType, Port


class OutputNode(NodeType):
    type = "output"
    title = "Output"
    category = "io"
    description = "Makes its value one of the run's outputs, under `name`."
    role = "output"
    params_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 128}},
        "required": ["name"],
        "additionalProperties": False,
    }
    inputs = (Port("value"),)

    async def run(self, inputs: dict[str, Any], context: NodeContext) -> dict[str, Any]:
        return {"value": inputs["value"]}

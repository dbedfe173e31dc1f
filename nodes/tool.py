"""`tool`: calls one tool of a `ToolRegistry` with the `args` object and gives its `result`.

The tool registry reaches the node type at construction: `tool_node_type(tools)` returns a
`ToolNode` subclass bound to that registry, which `builtin_node_types` puts in the
`NodeRegistry`. So each engine (and each test) chooses its tools, as it chooses its node types,
with no module-level registry and no change to `NodeContext`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from engine.documents.issues import Issue
from engine.errors import NodeFailure
from engine.nodes.registry import NodeRegistry
from engine.nodes.types import CheckContext, NodeContext, NodeType, Port
from nodes.tools import ToolError, ToolRegistry


def _params_schema(names: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "tool": {
                "type": "string",
                "minLength": 1,
                "examples": names,
                "description": "The tool to call: " + (", ".join(names) or "none"),
            },
        },
        "required": ["tool"],
        "additionalProperties": False,
    }


class ToolNode(NodeType):
    type = "tool"
    title = "Tool"
    category = "tools"
    recordable = True  # calls a tool: the outside world, an MCP server (SPEC §17 replays it)
    description = (
        "Calls a registered tool (calculator, regex_extract, json_path, http_request, or one "
        "installed through the `nodeloom.tools` entry points) with the `args` object; the "
        "tool's answer is `result`. The args are checked against the tool's JSON Schema."
    )
    inputs = (Port("args", "object", description="The tool's arguments."),)
    outputs = (Port("result", "any"),)
    params_schema: ClassVar[dict[str, Any]] = _params_schema([])
    tools: ClassVar[ToolRegistry]  # set by `tool_node_type`

    @classmethod
    def check(cls, params: Mapping[str, Any], context: CheckContext) -> Iterable[Issue]:
        name = params.get("tool")
        if context.tools_checked and isinstance(name, str) and name not in cls.tools:
            known = ", ".join(cls.tools.names) or "none"
            yield Issue("invalid_params", f"unknown tool {name!r} (tools: {known})", path="/tool")

    async def run(self, inputs: dict[str, Any], context: NodeContext) -> dict[str, Any]:
        try:
            result = await self.tools.call(
                self.params["tool"],
                inputs["args"],
                idempotency_key=context.idempotency_key,
                owner_id=context.owner_id,
            )
        except ToolError as exc:
            raise NodeFailure(exc.detail, retryable=exc.retryable) from None
        return {"result": result}


def tool_node_type(tools: ToolRegistry) -> type[ToolNode]:
    """The `tool` node type calling the tools of ``tools``."""
    namespace = {
        "__module__": __name__,
        "tools": tools,
        # `tools.listed` is kept up to date: tools registered later are shown as examples too.
        "params_schema": _params_schema(tools.listed),
    }
    return type("ToolNode", (ToolNode,), namespace)


def tools_of(registry: NodeRegistry) -> ToolRegistry | None:
    """The `ToolRegistry` the `tool` node type of ``registry`` calls (None without one)."""
    node_type = registry.get("tool")
    if node_type is None or not issubclass(node_type, ToolNode):
        return None
    return getattr(node_type, "tools", None)

"""Built-in node types, one module each, and the registry that holds them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nodes.base import NodeType

if TYPE_CHECKING:
    from nodes.tools import ToolRegistry


def builtin_node_types(tools: ToolRegistry | None = None) -> list[type[NodeType]]:
    """The built-in node types; the `tool` node calls ``tools`` (default: the built-in tools)."""
    from nodes.aggregate import AggregateNode  # noqa: PLC0415 - keep `import nodes` light
    from nodes.condition import ConditionNode  # noqa: PLC0415
    from nodes.file_read import FileReadNode  # noqa: PLC0415
    from nodes.file_write import FileWriteNode  # noqa: PLC0415
    from nodes.input import InputNode  # noqa: PLC0415
    from nodes.llm import LLMNode  # noqa: PLC0415
    from nodes.output import OutputNode  # noqa: PLC0415
    from nodes.template import TemplateNode  # noqa: PLC0415
    from nodes.tool import tool_node_type  # noqa: PLC0415
    from nodes.tools import ToolRegistry  # noqa: PLC0415

    return [
        InputNode,
        OutputNode,
        TemplateNode,
        AggregateNode,
        ConditionNode,
        LLMNode,
        tool_node_type(tools if tools is not None else ToolRegistry.builtin()),
        FileReadNode,
        FileWriteNode,
    ]

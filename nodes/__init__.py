"""Built-in node types, one module each, and the registry that holds them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.nodes.types import NodeType

if TYPE_CHECKING:
    from nodes.tools import ToolRegistry


def builtin_node_types(tools: ToolRegistry | None = None) -> list[type[NodeType]]:
    """The built-in node types; `tool` and `agent` nodes call ``tools`` (default: the built-in
    tools)."""
    from nodes.agent import agent_node_type  # noqa: PLC0415 - keep `import nodes` light
    from nodes.aggregate import AggregateNode  # noqa: PLC0415
    from nodes.bodies import LoopNode, MapNode, SubgraphNode  # noqa: PLC0415
    from nodes.condition import ConditionNode  # noqa: PLC0415
    from nodes.file_read import FileReadNode  # noqa: PLC0415
    from nodes.file_write import FileWriteNode  # noqa: PLC0415
    from nodes.human_input import HumanInputNode  # noqa: PLC0415
    from nodes.input import InputNode  # noqa: PLC0415
    from nodes.llm import LLMNode  # noqa: PLC0415
    from nodes.output import OutputNode  # noqa: PLC0415
    from nodes.template import TemplateNode  # noqa: PLC0415
    from nodes.tool import tool_node_type  # noqa: PLC0415
    from nodes.tools import ToolRegistry  # noqa: PLC0415

    tools = tools if tools is not None else ToolRegistry.builtin()
    return [
        InputNode,
        OutputNode,
        TemplateNode,
        AggregateNode,
        ConditionNode,
        LLMNode,
        tool_node_type(tools),
        agent_node_type(tools),
        FileReadNode,
        FileWriteNode,
        SubgraphNode,
        MapNode,
        LoopNode,
        HumanInputNode,
    ]

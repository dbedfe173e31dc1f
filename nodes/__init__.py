"""Built-in node types, one module each, and the registry that holds them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.knowledge.slot import KnowledgeSlot
from engine.nodes.registry import NodeRegistry
from engine.nodes.types import NodeType

if TYPE_CHECKING:
    from nodes.tools import ToolRegistry


def builtin_node_types(
    tools: ToolRegistry | None = None, knowledge: KnowledgeSlot | None = None
) -> list[type[NodeType]]:
    """The built-in node types; `tool` and `agent` nodes call ``tools`` (default: the built-in
    tools); `retrieve` searches the collections ``knowledge`` is filled with (default: the slot
    of the tools' `knowledge_search`; see `knowledge_slot`)."""
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
    from nodes.retrieve import retrieve_node_type  # noqa: PLC0415
    from nodes.template import TemplateNode  # noqa: PLC0415
    from nodes.tool import tool_node_type  # noqa: PLC0415
    from nodes.tools import ToolRegistry  # noqa: PLC0415
    from nodes.tools.knowledge_search import KnowledgeSearch  # noqa: PLC0415

    tools = tools if tools is not None else ToolRegistry.builtin()
    # Where `retrieve` finds the collections once a database is open: the slot of the tools'
    # `knowledge_search` when they have it (one slot to fill for both).
    registered = tools.get("knowledge_search")
    if knowledge is not None:
        slot = knowledge
    elif isinstance(registered, KnowledgeSearch):
        slot = registered.slot
    else:
        slot = KnowledgeSlot()
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
        retrieve_node_type(slot),
    ]


def knowledge_slot(registry: NodeRegistry) -> KnowledgeSlot | None:
    """The slot the registry's `retrieve` node searches through, to fill once a database is
    open (None without a `retrieve` node type)."""
    if "retrieve" not in registry:
        return None
    slot: KnowledgeSlot | None = getattr(registry["retrieve"], "slot", None)
    return slot

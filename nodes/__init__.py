"""Built-in node types, one module each, and the registry that holds them."""

from __future__ import annotations

from nodes.base import NodeType


def builtin_node_types() -> list[type[NodeType]]:
    from nodes.aggregate import AggregateNode  # noqa: PLC0415 - keep `import nodes` light
    from nodes.condition import ConditionNode  # noqa: PLC0415
    from nodes.input import InputNode  # noqa: PLC0415
    from nodes.llm import LLMNode  # noqa: PLC0415
    from nodes.output import OutputNode  # noqa: PLC0415
    from nodes.template import TemplateNode  # noqa: PLC0415

    return [InputNode, OutputNode, TemplateNode, AggregateNode, ConditionNode, LLMNode]

"""Built-in tools for the `tool` node, one module each, and the registry that holds them."""

from __future__ import annotations

from nodes.tools.base import Tool, ToolError
from nodes.tools.registry import ToolRegistry

__all__ = ["Tool", "ToolError", "ToolRegistry", "builtin_tools"]


def builtin_tools() -> list[Tool]:
    from engine.knowledge.slot import KnowledgeSlot  # noqa: PLC0415
    from nodes.tools.calculator import Calculator  # noqa: PLC0415 - keep `import nodes` light
    from nodes.tools.http_request import HttpRequest  # noqa: PLC0415
    from nodes.tools.json_path import JsonPath  # noqa: PLC0415
    from nodes.tools.knowledge_search import KnowledgeSearch  # noqa: PLC0415
    from nodes.tools.regex_extract import RegexExtract  # noqa: PLC0415

    # `knowledge_search` searches the collections its slot is filled with: the `retrieve` node
    # made with these tools shares it (`nodes.builtin_node_types`).
    knowledge = KnowledgeSearch(KnowledgeSlot())
    return [Calculator(), RegexExtract(), JsonPath(), HttpRequest(), knowledge]

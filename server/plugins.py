"""The node types this installation has: the built-in ones and those of installed packages."""

from __future__ import annotations

from engine.nodes import NodeRegistry
from nodes import builtin_node_types
from nodes.tools import ToolRegistry

__all__ = ["installed_registry"]


def installed_registry() -> NodeRegistry:
    """Built-in node types plus those installed through the ``nodeloom.nodes`` entry points; the
    `tool` node gets the built-in tools plus the ``nodeloom.tools`` entry points."""
    registry = NodeRegistry(builtin_node_types(ToolRegistry.default()))
    registry.load_entry_points()
    return registry

from __future__ import annotations

from typing import Any

import pytest

from engine.document import Workflow, from_builtins
from nodes.registry import NodeRegistry


@pytest.fixture
def registry() -> NodeRegistry:
    return NodeRegistry.builtin()


def workflow(
    nodes: list[dict[str, Any]], edges: list[tuple[str, str]] = (), **extra: Any
) -> Workflow:  # type: ignore[assignment]
    """A workflow document from terse test data: edges as ``("a.text", "b.x")`` pairs."""
    return from_builtins(
        {
            "schema_version": 1,
            "name": extra.pop("name", "test"),
            "nodes": nodes,
            "edges": [{"from": source, "to": target} for source, target in edges],
            **extra,
        }
    )

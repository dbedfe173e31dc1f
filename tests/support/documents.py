"""Workflow documents from terse test data, and where the repository is."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from engine.documents.document import Workflow, from_builtins

ROOT = Path(__file__).resolve().parent.parent.parent


def workflow(
    nodes: list[dict[str, Any]], edges: Sequence[tuple[str, str]] = (), **extra: Any
) -> Workflow:
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

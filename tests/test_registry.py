from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from engine.errors import PluginError
from engine.nodes.registry import NodeRegistry
from engine.nodes.types import NodeContext, NodeType
from server.plugins import installed_registry
from tests.support.engine import builtin_registry


def test_catalogue(registry: NodeRegistry, snapshot: Any) -> None:
    assert registry.catalogue == snapshot


def test_registries_are_independent() -> None:
    class Extra(NodeType):
        type = "extra"
        title = "Extra"

        async def run(self, inputs: dict[str, Any], context: NodeContext) -> dict[str, Any]:
            return {}

    mine, other = builtin_registry(), builtin_registry()
    mine.register(Extra)
    assert "extra" in mine
    assert "extra" not in other


def test_register_rejects_bad_node_types(registry: NodeRegistry) -> None:
    class NoName(NodeType):
        title = "No name"

    class BadSchema(NodeType):
        type = "bad_schema"
        title = "Bad"
        params_schema = {"type": "objekt"}  # noqa: RUF012

    class Clash(NodeType):
        type = "template"
        title = "Clash"

    with pytest.raises(PluginError, match="needs a `type` name"):
        registry.register(NoName)
    with pytest.raises(PluginError, match="invalid params schema"):
        registry.register(BadSchema)
    with pytest.raises(PluginError, match="registered twice"):
        registry.register(Clash)
    with pytest.raises(PluginError, match="not a NodeType subclass"):
        registry.register(dict)  # type: ignore[arg-type]


@pytest.fixture
def plugin_on_path(tmp_path: Path) -> Any:
    """A third-party package with a `nodeloom.nodes` entry point, importable from tmp_path."""
    package = tmp_path / "shout_nodes"
    package.mkdir()
    (package / "__init__.py").write_text(
        textwrap.dedent("""
        from engine.nodes import NodeType, Port

        class Shout(NodeType):
            type = "shout"
            title = "Shout"
            inputs = (Port("text", "string"),)
            outputs = (Port("text", "string"),)

            async def run(self, inputs, context):
                return {"text": inputs["text"].upper()}
    """)
    )
    dist = tmp_path / "shout_nodes-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: shout-nodes\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[nodeloom.nodes]\nshout = shout_nodes:Shout\n")
    sys.path.insert(0, str(tmp_path))
    yield
    sys.path.remove(str(tmp_path))
    sys.modules.pop("shout_nodes", None)


@pytest.mark.usefixtures("plugin_on_path")
def test_entry_point_node_types_are_loaded() -> None:
    registry = installed_registry()
    assert registry["shout"].title == "Shout"
    assert "shout" not in builtin_registry()


def test_broken_plugin_is_reported(tmp_path: Path) -> None:
    dist = tmp_path / "broken-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[nodeloom.nodes]\nbroken = no_such_module:Thing\n")
    sys.path.insert(0, str(tmp_path))
    try:
        with pytest.raises(PluginError, match="node plugin 'broken'"):
            installed_registry()
    finally:
        sys.path.remove(str(tmp_path))

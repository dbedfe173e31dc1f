"""The engine's public surfaces are explicit: every module says what it offers in `__all__`,
and says it exactly (as httpx checks its exports)."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

from tests.support.documents import ROOT

ENGINE = ROOT / "engine"
def _is_bare(path: Path) -> bool:
    """A package face holding only its docstring."""
    return len(ast.parse(path.read_text()).body) <= 1


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _defined(tree: ast.Module) -> tuple[set[str], set[str]]:
    """The public classes and functions a module defines, and every name it binds at the top."""
    defined, bound = set(), set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            bound.add(node.name)
            if not node.name.startswith("_"):
                defined.add(node.name)
        elif isinstance(node, ast.Assign):
            bound.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            bound.add(node.target.id)
    return defined, bound


SOURCES = sorted(
    path
    for path in ENGINE.rglob("*.py")
    if "migrations" not in path.parts and not (path.name == "__init__.py" and _is_bare(path))
)


@pytest.mark.parametrize("path", SOURCES, ids=_module_name)
def test_every_engine_module_lists_what_it_offers(path: Path) -> None:
    module = importlib.import_module(_module_name(path))
    exported = getattr(module, "__all__", None)
    assert exported is not None, f"{module.__name__} has no __all__"
    assert len(exported) == len(set(exported)), "a name is listed twice"
    assert all(hasattr(module, name) for name in exported)
    if path.name == "__init__.py":  # a package's face: exactly what it hands on
        public = {
            name
            for name, value in vars(module).items()
            if not name.startswith("_") and type(value).__name__ != "module"
        } - {"annotations"}
        assert set(exported) == public
        return
    defined, bound = _defined(ast.parse(path.read_text()))
    assert defined <= set(exported), f"not in __all__: {sorted(defined - set(exported))}"
    assert set(exported) <= bound, f"listed, not defined here: {sorted(set(exported) - bound)}"


def _imports(path: Path) -> list[str]:
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
        elif isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
    return found


def test_the_engine_imports_neither_nodes_server_nor_ui() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}: {name}"
        for path in ENGINE.rglob("*.py")
        for name in _imports(path)
        if name.split(".")[0] in ("nodes", "server", "ui")
    ]
    assert offenders == []


def test_the_core_does_not_import_distributed_execution() -> None:
    """Only the schema's migrations know of the queue's tables."""
    offenders = [
        f"{path.relative_to(ROOT)}: {name}"
        for path in ENGINE.rglob("*.py")
        if not {"distributed", "migrations"} & set(path.parts)
        for name in _imports(path)
        if name.startswith("engine.distributed")
    ]
    assert offenders == []

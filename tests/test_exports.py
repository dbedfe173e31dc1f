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


def _imported_modules(path: Path) -> list[str]:
    """Every module an import in `path` can name, relative imports resolved: `from a import b`
    names both `a` and `a.b` (b may be a module)."""
    package = _module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *(node.module.split(".") if node.module else [])])
            found += [module, *(f"{module}.{alias.name}" for alias in node.names)]
    return found


def _test_module_in(name: str) -> str | None:
    """The test module or conftest a dotted name reaches (`conftest`, `tests.test_x`,
    `tests.api.test_x`, `tests.api.conftest`), if any; none within `tests.support`."""
    parts = name.split(".")
    if parts[0] == "conftest":
        return "conftest"
    if parts[0] != "tests":
        return None
    for at, part in enumerate(parts[1:], start=1):
        if part == "support":
            return None
        if part == "conftest" or part.startswith("test_"):
            return ".".join(parts[: at + 1])
    return None


def test_no_test_module_or_benchmark_imports_another_test_module() -> None:
    """What tests share lives in tests/support/: a test module, a conftest or a
    benchmark imports them from there, never from a test module or a conftest."""
    assert _test_module_in("tests.api.test_auth.tokens_for") == "tests.api.test_auth"
    assert _test_module_in("tests.conftest") == "tests.conftest"
    assert _test_module_in("tests.support.nodes.test_registry") is None
    sources = [*(ROOT / "tests").rglob("*.py"), *(ROOT / "bench").rglob("*.py")]
    offenders = sorted(
        {
            f"{path.relative_to(ROOT)}: {module}"
            for path in sources
            for module in map(_test_module_in, _imported_modules(path))
            if module is not None
        }
    )
    assert offenders == []

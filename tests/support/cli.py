"""Running the `nodeloom` command as users do: a real subprocess, its own database."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.documents import ROOT


@pytest.fixture(autouse=True)
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each test stores its runs in a database of its own and works in a workspace of its own
    holding the examples' data files (the subprocesses inherit both)."""
    url = f"sqlite:///{tmp_path}/nodeloom.db"
    monkeypatch.setenv("NODELOOM_DATABASE_URL", url)
    workspace = tmp_path / "workspace"
    shutil.copytree(ROOT / "workflows" / "data", workspace)
    monkeypatch.setenv("NODELOOM_WORKSPACE", str(workspace))
    return url


def matches(value: Any, expected: Any) -> bool:
    """``value == expected``; a type asks for a non-empty value of it, a function is a check."""
    if isinstance(expected, type):
        return isinstance(value, expected) and bool(value)
    if callable(expected):
        return bool(expected(value))
    return bool(value == expected)


def nodeloom(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server.cli", *map(str, args)],
        capture_output=True, text=True, timeout=60, cwd=cwd or ROOT, check=False,
    )


def write_workflow(path: Path, nodes: list[dict[str, Any]], edges: list[tuple[str, str]],
                   name: str = "test") -> Path:
    document = {
        "schema_version": 1, "name": name, "nodes": nodes,
        "edges": [{"from": source, "to": target} for source, target in edges],
    }
    path.write_text(json.dumps(document))
    return path


def assert_clean_failure(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in result.stderr

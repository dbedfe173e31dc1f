from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from engine.documents.graph import compile_plan, validate
from engine.documents.inputs import resolve_inputs
from engine.execution.results import NodeState, RunResult
from engine.nodes.registry import NodeRegistry
from engine.nodes.types import CheckContext
from tests.support.documents import workflow
from tests.support.engine import new_execution


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    folder = tmp_path / "workspace"
    folder.mkdir()
    return folder


def given(name: str, value: Any) -> dict[str, Any]:
    return {"id": name, "type": "input", "params": {"name": name, "default": value}}


async def run(
    registry: NodeRegistry,
    workspace: Path,
    nodes: list[dict[str, Any]],
    edges: list[tuple[str, str]] | None = None,
    reuse: dict[str, NodeState] | None = None,
) -> RunResult:
    plan = compile_plan(workflow(nodes, edges or []), registry, CheckContext(workspace=workspace))
    execution = new_execution(
        plan, resolve_inputs(plan, {}), run_id="r", workspace=workspace, reuse=reuse
    )
    return await execution.execute()


def succeeded(result: RunResult, node: str) -> dict[str, Any]:
    state = result.nodes[node]
    assert state.status == "succeeded", state.error
    assert state.output is not None
    return state.output


def failed(result: RunResult, node: str) -> str:
    state = result.nodes[node]
    assert state.status == "failed", state.output
    assert state.error is not None
    return state.error


# -- paths --------------------------------------------------------------------------------------


@pytest.mark.parametrize("node_type", ["file_read", "file_write"])
def test_static_paths_outside_the_workspace_are_validation_errors(
    registry: NodeRegistry, workspace: Path, tmp_path: Path, node_type: str
) -> None:
    (tmp_path / "secret.txt").write_text("secret")
    (workspace / "link").symlink_to(tmp_path)
    (workspace / "inner").mkdir()
    (workspace / "ok-link").symlink_to(workspace / "inner")
    for path in ["../secret.txt", "inner/../../secret.txt", str(tmp_path / "secret.txt"),
                 "/etc/passwd", "link/secret.txt", ".", "inner/.."]:  # fmt: skip
        nodes = [{"id": "f", "type": node_type, "params": {"path": path}}]
        if node_type == "file_write":
            nodes.append(given("c", "x"))
        document = workflow(nodes, [("c.value", "f.content")] if node_type == "file_write" else [])
        issues = validate(document, registry, CheckContext(workspace=workspace))
        assert [(i.code, i.node, i.path) for i in issues] == [
            ("path_outside_workspace", "f", "/nodes/0/params/path")
        ], path
        assert issues[0].message == f"path {path!r} is outside the workspace folder"
    for path in ["a.txt", "inner/../a.txt", str(workspace / "a.txt"), "ok-link/a.txt"]:
        document = workflow([{"id": "f", "type": "file_read", "params": {"path": path}}])
        assert validate(document, registry, CheckContext(workspace=workspace)) == [], path


def test_without_a_workspace_climbing_paths_are_still_refused(registry: NodeRegistry) -> None:
    document = workflow([{"id": "f", "type": "file_read", "params": {"path": "a/../../x"}}])
    issues = validate(document, registry, CheckContext())
    assert [issue.code for issue in issues] == ["path_outside_workspace"]


async def test_dynamic_paths_outside_the_workspace_fail_the_node(
    registry: NodeRegistry, workspace: Path, tmp_path: Path
) -> None:
    (tmp_path / "secret.txt").write_text("secret")
    (workspace / "link").symlink_to(tmp_path / "secret.txt")
    for path in ["../secret.txt", str(tmp_path / "secret.txt"), "link"]:
        result = await run(
            registry,
            workspace,
            [given("p", path), {"id": "f", "type": "file_read", "params": {}}],
            [("p.value", "f.path")],
        )
        assert failed(result, "f") == f"path {path!r} is outside the workspace folder"
        result = await run(
            registry,
            workspace,
            [given("p", path), given("c", "x"), {"id": "f", "type": "file_write", "params": {}}],
            [("p.value", "f.path"), ("c.value", "f.content")],
        )
        assert failed(result, "f") == f"path {path!r} is outside the workspace folder"
    assert (tmp_path / "secret.txt").read_text() == "secret"


async def test_symlink_made_after_validation_is_refused_when_reading(
    registry: NodeRegistry, workspace: Path, tmp_path: Path
) -> None:
    (tmp_path / "secret.txt").write_text("secret")
    nodes = [{"id": "f", "type": "file_read", "params": {"path": "data.txt"}}]
    plan = compile_plan(workflow(nodes), registry, CheckContext(workspace=workspace))
    (workspace / "data.txt").symlink_to(tmp_path / "secret.txt")
    result = await new_execution(plan, {}, run_id="r", workspace=workspace).execute()
    assert failed(result, "f") == "path 'data.txt' is outside the workspace folder"


async def test_no_path_and_missing_file(registry: NodeRegistry, workspace: Path) -> None:
    result = await run(registry, workspace, [{"id": "f", "type": "file_read", "params": {}}])
    assert failed(result, "f") == ("no file path: set the `path` param or connect the `path` input")
    nodes = [{"id": "f", "type": "file_read", "params": {"path": "nope.txt"}}]
    result = await run(registry, workspace, nodes)
    assert failed(result, "f") == "no file 'nope.txt' in the workspace"


# -- formats ------------------------------------------------------------------------------------


async def round_trip(
    registry: NodeRegistry, workspace: Path, value: Any, fmt: str, path: str = "out/data"
) -> Any:
    """Write ``value`` with file_write, read it back with file_read (fed the written path)."""
    result = await run(
        registry,
        workspace,
        [
            given("c", value),
            {"id": "w", "type": "file_write", "params": {"path": path, "format": fmt}},
            {"id": "r", "type": "file_read", "params": {"format": fmt}},
        ],
        [("c.value", "w.content"), ("w.path", "r.path")],
    )
    assert succeeded(result, "w") == {"path": path}
    return succeeded(result, "r")["content"]


async def test_round_trips(registry: NodeRegistry, workspace: Path) -> None:
    value = {"name": "Ada", "tags": ["x", "y"], "n": 1.5, "none": None}
    assert await round_trip(registry, workspace, value, "json") == value
    assert json.loads((workspace / "out/data").read_text()) == value
    text = "héllo\nworld\n"
    assert await round_trip(registry, workspace, text, "text") == text
    lines = ["one", "two", "three"]
    assert await round_trip(registry, workspace, lines, "lines") == lines
    assert (workspace / "out/data").read_text() == "one\ntwo\nthree\n"
    rows = [{"name": "Ada", "year": "1815"}, {"name": "Grace, Hopper", "year": "1906"}]
    assert await round_trip(registry, workspace, rows, "csv", "people.csv") == rows
    assert (workspace / "people.csv").read_text() == ('name,year\nAda,1815\n"Grace, Hopper",1906\n')


async def test_csv_values_and_columns(registry: NodeRegistry, workspace: Path) -> None:
    rows = [{"a": 1, "b": None}, {"b": True, "c": [1]}]
    assert await round_trip(registry, workspace, rows, "csv") == [
        {"a": "1", "b": "", "c": ""},
        {"a": "", "b": "true", "c": "[1]"},
    ]
    (workspace / "ragged.csv").write_text("a,b\n1,2,3\n")
    nodes = [{"id": "f", "type": "file_read", "params": {"path": "ragged.csv", "format": "csv"}}]
    result = await run(registry, workspace, nodes)
    assert failed(result, "f") == "'ragged.csv' line 2 has more fields than the header"


async def test_bad_content_for_the_format(registry: NodeRegistry, workspace: Path) -> None:
    cases = [
        ("text", {"a": 1}, "format text takes a string, got object (use format json)"),
        ("lines", "abc", "format lines takes a list, got string"),
        ("csv", [1, 2], "format csv takes a list of objects (one per row)"),
    ]
    for fmt, value, message in cases:
        result = await run(
            registry,
            workspace,
            [
                given("c", value),
                {"id": "w", "type": "file_write", "params": {"path": "x", "format": fmt}},
            ],
            [("c.value", "w.content")],
        )
        assert failed(result, "w") == message
    (workspace / "bad.json").write_text("{nope")
    nodes = [{"id": "f", "type": "file_read", "params": {"path": "bad.json", "format": "json"}}]
    error = failed(await run(registry, workspace, nodes), "f")
    assert error.startswith("'bad.json' is not valid JSON: ")


# -- modes --------------------------------------------------------------------------------------


async def write(registry: NodeRegistry, workspace: Path, value: Any, **params: Any) -> RunResult:
    return await run(
        registry,
        workspace,
        [given("c", value), {"id": "w", "type": "file_write", "params": params}],
        [("c.value", "w.content")],
    )


async def test_modes(registry: NodeRegistry, workspace: Path) -> None:
    succeeded(await write(registry, workspace, "a\n", path="log.txt", mode="new"), "w")
    succeeded(await write(registry, workspace, "b\n", path="log.txt", mode="append"), "w")
    assert (workspace / "log.txt").read_text() == "a\nb\n"
    result = await write(registry, workspace, "c\n", path="log.txt", mode="new")
    assert failed(result, "w") == "file 'log.txt' already exists (mode: new never overwrites)"
    assert (workspace / "log.txt").read_text() == "a\nb\n"
    succeeded(await write(registry, workspace, "c\n", path="log.txt"), "w")
    assert (workspace / "log.txt").read_text() == "c\n"


async def test_csv_append_keeps_the_header(registry: NodeRegistry, workspace: Path) -> None:
    params = {"path": "t.csv", "format": "csv", "mode": "append"}
    succeeded(await write(registry, workspace, [{"a": 1, "b": 2}], **params), "w")
    succeeded(await write(registry, workspace, [{"b": 4, "a": 3}], **params), "w")
    assert (workspace / "t.csv").read_text() == "a,b\n1,2\n3,4\n"
    result = await write(registry, workspace, [{"z": 1}], **params)
    assert failed(result, "w") == "row 0 has columns not in the file's header: z"


def test_json_cannot_append(registry: NodeRegistry, workspace: Path) -> None:
    document = workflow(
        [
            given("c", 1),
            {
                "id": "w",
                "type": "file_write",
                "params": {"path": "x.json", "format": "json", "mode": "append"},
            },
        ],
        [("c.value", "w.content")],
    )
    issues = validate(document, registry, CheckContext(workspace=workspace))
    assert [(i.code, i.path) for i in issues] == [("invalid_params", "/nodes/1/params/mode")]


# -- cache keys ---------------------------------------------------------------------------------


async def test_a_changed_file_changes_the_cache_key(
    registry: NodeRegistry, workspace: Path
) -> None:
    (workspace / "in.txt").write_text("one")
    nodes = [{"id": "f", "type": "file_read", "params": {"path": "in.txt"}}]
    first = await run(registry, workspace, nodes)
    assert succeeded(first, "f") == {"content": "one"}
    state = prior = first.nodes["f"]
    same = await run(registry, workspace, nodes, reuse={"f": prior})
    assert same.nodes["f"].status == "cached"
    assert same.nodes["f"].cache_key == state.cache_key
    (workspace / "in.txt").write_text("two")
    changed = await run(registry, workspace, nodes, reuse={"f": prior})
    assert changed.nodes["f"].status == "succeeded"
    assert changed.nodes["f"].cache_key != state.cache_key
    assert changed.nodes["f"].output == {"content": "two"}

"""A `tool` node run alone on given arguments by the real executor, and what it answers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.documents.graph import compile_plan
from engine.documents.inputs import resolve_inputs
from engine.execution.results import NodeState
from engine.nodes.registry import NodeRegistry
from engine.nodes.types import CheckContext
from tests.support.documents import workflow
from tests.support.engine import new_execution

__all__ = ["error_of", "result_of", "run_tool", "tool_workflow"]


def tool_workflow(tool: str, args: Any) -> Any:
    return workflow(
        [
            {
                "id": "a",
                "type": "input",
                "params": {"name": "args", "schema": {"type": "object"}, "default": args},
            },
            {"id": "t", "type": "tool", "params": {"tool": tool}},
        ],
        [("a.value", "t.args")],
    )


async def run_tool(registry: NodeRegistry, tool: str, args: Any, tmp_path: Path) -> NodeState:
    plan = compile_plan(tool_workflow(tool, args), registry, CheckContext(workspace=tmp_path))
    execution = new_execution(plan, resolve_inputs(plan, {}), run_id="r", workspace=tmp_path)
    return (await execution.execute()).nodes["t"]


async def result_of(registry: NodeRegistry, tool: str, args: Any, tmp_path: Path) -> Any:
    state = await run_tool(registry, tool, args, tmp_path)
    assert state.status == "succeeded", state.error
    return state.output["result"]  # type: ignore[index]


async def error_of(registry: NodeRegistry, tool: str, args: Any, tmp_path: Path) -> str:
    state = await run_tool(registry, tool, args, tmp_path)
    assert state.status == "failed", state.output
    assert state.error is not None
    return state.error


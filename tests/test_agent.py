"""The `agent` node and `aggregate` in `synthesis` mode. The loop's rules (tool errors fed back,
the last step may only answer, strays refused) are checked with a scripted model standing in for
one; what a real model does with them is checked with the embedded model in test_examples.py and
below."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from engine.documents.graph import compile_plan, validate
from engine.documents.inputs import resolve_inputs
from engine.execution.results import RunResult
from engine.models import ModelRegistry, ModelService
from engine.nodes.types import CheckContext
from nodes.agent import step_schema
from nodes.tools import ToolRegistry
from tests.support.agents import MODEL, ScriptedModels
from tests.support.documents import ROOT, workflow
from tests.support.engine import builtin_registry, new_execution


def agent_workflow(task: str, **params: Any) -> Any:
    return workflow(
        [
            {"id": "task", "type": "input", "params": {"name": "task", "default": task}},
            {"id": "solve", "type": "agent", "params": {"model": MODEL, **params}},
            {"id": "answer", "type": "output", "params": {"name": "answer"}},
            {"id": "steps", "type": "output", "params": {"name": "steps"}},
        ],
        [("task.value", "solve.task"), ("solve.answer", "answer.value"),
         ("solve.steps", "steps.value")],
    )


async def run(document: Any, models: Any) -> RunResult:
    plan = compile_plan(document, builtin_registry(), CheckContext(models=models.names))
    execution = new_execution(plan, resolve_inputs(plan, {}), run_id="run_agent", models=models)
    return await execution.execute()


async def test_tool_results_are_fed_back_until_the_answer() -> None:
    models = ScriptedModels([
        '{"tool": "calculator", "args": {"expression": "24 * 17"}}',
        '{"answer": "408 eggs"}',
    ])
    result = await run(agent_workflow("Eggs in 17 boxes of 24?", tools=["calculator"]), models)
    assert result.status == "succeeded"
    assert result.outputs == {
        "answer": "408 eggs",
        "steps": [
            {"step": 1, "tool": "calculator", "args": {"expression": "24 * 17"}, "result": 408},
            {"step": 2, "answer": "408 eggs"},
        ],
    }
    second = models.requests[1].prompt
    assert second.endswith(
        'Step 1: {"tool": "calculator", "args": {"expression": "24 * 17"}}\nResult: 408\nStep 2: '
    )
    assert "Task: Eggs in 17 boxes of 24?" in second
    usage = {"prompt_tokens": 20, "completion_tokens": 10, "model": MODEL}
    assert result.nodes["solve"].usage == usage


async def test_tool_errors_go_back_to_the_model_not_out_of_the_node() -> None:
    models = ScriptedModels([
        '{"tool": "calculator", "args": {"expression": "1 / 0"}}',
        '{"tool": "json_path", "args": {"path": "$.a", "data": {}}}',
        '{"answer": "cannot divide by zero"}',
    ])
    result = await run(agent_workflow("1/0?", tools=["calculator"], max_steps=4), models)
    assert result.status == "succeeded"
    steps = result.outputs["steps"]
    assert "division by zero" in steps[0]["error"]
    assert steps[1]["error"] == "tool 'json_path' is not one of this agent's tools"
    assert "Error: tool 'json_path' is not one of" in models.requests[2].prompt


async def test_the_last_step_may_only_answer() -> None:
    models = ScriptedModels(['{"tool": "calculator", "args": {"expression": "2"}}'] * 2
                            + ['{"answer": "2"}'])
    result = await run(agent_workflow("two", tools=["calculator"], max_steps=3), models)
    assert result.outputs["answer"] == "2"
    schemas = [request.response_schema for request in models.requests]
    assert schemas[0] == schemas[1] == step_schema(ToolRegistry.builtin(), ["calculator"])
    assert schemas[2] == step_schema(ToolRegistry.builtin(), [])
    assert "anyOf" not in schemas[2]


async def test_a_malformed_step_fails_the_node_with_its_number() -> None:
    models = ScriptedModels(['{"tool": "calculator", "args": {"expression": "2"}}', '{"answ'])
    result = await run(agent_workflow("two", tools=["calculator"], retries=0), models)
    assert result.status == "failed"
    assert result.nodes["solve"].error is not None
    assert "step 2 is not valid JSON" in result.nodes["solve"].error


def test_step_schema_allows_exactly_a_call_or_an_answer() -> None:
    schema = step_schema(ToolRegistry.builtin(), ["calculator"])
    validator = jsonschema.Draft202012Validator(schema)
    assert validator.is_valid({"tool": "calculator", "args": {"expression": "1+1"}})
    assert validator.is_valid({"answer": "2"})
    assert not validator.is_valid({"tool": "calculator", "args": {}})
    assert not validator.is_valid({"tool": "http_request", "args": {"url": "http://x"}})
    assert not validator.is_valid({"answer": "2", "tool": "calculator"})


def test_unknown_tools_and_models_are_validation_errors() -> None:
    document = agent_workflow("x", tools=["calculator", "shell"], model="gpt-9")
    issues = validate(document, builtin_registry(), CheckContext(models=frozenset({MODEL})))
    found = {(issue.code, issue.path) for issue in issues}
    assert ("invalid_params", "/nodes/1/params/tools/1") in found
    assert ("unknown_model", "/nodes/1/params/model") in found
    assert any("unknown tool 'shell'" in issue.message for issue in issues)


def test_synthesis_names_an_unknown_model() -> None:
    document = workflow(
        [{"id": "items", "type": "input", "params": {"name": "items", "default": "a"}},
         {"id": "merge", "type": "aggregate",
          "params": {"mode": "synthesis", "model": "nope", "instruction": "Merge."}}],
        [("items.value", "merge.items")],
    )
    issues = validate(document, builtin_registry(), CheckContext(models=frozenset({MODEL})))
    assert [(issue.code, issue.path) for issue in issues] == [
        ("unknown_model", "/nodes/1/params/model")
    ]


async def test_synthesis_prompts_with_every_item_in_order() -> None:
    models = ScriptedModels([" The Pacific Ocean.\n"])
    document = workflow(
        [{"id": "a", "type": "input", "params": {"name": "a", "default": "Pacific"}},
         {"id": "b", "type": "input", "params": {"name": "b", "default": {"ocean": "Atlantic"}}},
         {"id": "merge", "type": "aggregate",
          "params": {"mode": "synthesis", "model": MODEL, "instruction": "Merge these."}},
         {"id": "out", "type": "output", "params": {"name": "merged"}}],
        [("a.value", "merge.items"), ("b.value", "merge.items"), ("merge.result", "out.value")],
    )
    result = await run(document, models)
    assert result.outputs == {"merged": "The Pacific Ocean."}
    assert models.requests[0].prompt == (
        'Merge these.\n\n1. Pacific\n2. {"ocean": "Atlantic"}\nCombined:'
    )
    usage = {"prompt_tokens": 10, "completion_tokens": 5, "model": MODEL}
    assert result.nodes["merge"].usage == usage


# -- with the embedded model ------------------------------------------------------------------


@pytest.fixture(scope="module")
def embedded(embedded_model: Path) -> ModelService:
    return ModelService(ModelRegistry.load(ROOT / "models"), budget=4 * 1024**3)


async def test_embedded_model_writes_well_formed_steps(embedded: ModelService) -> None:
    document = agent_workflow(
        "What is 37 + 5?", tools=["calculator"], max_steps=2, max_tokens=48,
        system_prompt=json.dumps("Use the calculator, then answer.")[1:-1],
    )
    result = await run(document, embedded)
    await embedded.close()
    assert result.status == "succeeded", result.nodes["solve"].error
    steps = result.outputs["steps"]
    schema = step_schema(ToolRegistry.builtin(), ["calculator"])
    for step in steps:
        decision = {key: value for key, value in step.items() if key in ("tool", "args", "answer")}
        jsonschema.validate(decision, schema)
    assert "answer" in steps[-1]
    assert result.outputs["answer"] == steps[-1]["answer"]

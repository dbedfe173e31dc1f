"""`nodeloom eval` (SPEC §17) with the embedded model: two variants of a saved workflow over a
10-row dataset. The second changes only the template after the `llm` node, so it reruns each of
the first variant's runs calling the model for none of them."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from engine.documents.document import from_builtins
from engine.storage.database import Database
from engine.storage.evaluations import EvaluationStore
from engine.storage.repository import Store
from tests.support.cli import database, nodeloom

__all__ = ["database"]  # the autouse fixture giving each test its own database

ANSWERING: dict[str, Any] = {
    "schema_version": 1,
    "name": "Answering",
    "nodes": [
        {"id": "q", "type": "input", "params": {"name": "q", "schema": {"type": "string"}}},
        {"id": "ask", "type": "template", "params": {"template": "Q: {{ q }}\nA:"}},
        {"id": "answer", "type": "llm",
         "params": {"model": "gemma-3-270m", "max_tokens": 8, "temperature": 0, "seed": 1}},
        {"id": "tidy", "type": "template", "params": {"template": "{{ text | trim }}"}},
        {"id": "out", "type": "output", "params": {"name": "answer"}},
    ],
    "edges": [
        {"from": "q.value", "to": "ask.q"},
        {"from": "ask.text", "to": "answer.prompt"},
        {"from": "answer.text", "to": "tidy.text"},
        {"from": "tidy.text", "to": "out.value"},
    ],
}  # fmt: skip
QUESTIONS = ["2 + 2", "the sky's colour", "a bee's food", "1 + 1", "ice when warmed",
             "the sun rises in the", "cats say", "water is", "grass is", "snow is"]  # fmt: skip


async def stored(url: str, questions: list[str] = QUESTIONS) -> tuple[str, str]:
    db = await Database.connect(url)
    try:
        workflow = await Store(db).create_workflow(from_builtins(ANSWERING))
        rows = [{"inputs": {"q": q}, "expected": {"answer": "?"}} for q in questions]
        dataset = await EvaluationStore(db).create_dataset("questions", rows, owner_id=None)
        return workflow.id, dataset.id
    finally:
        await db.close()


def priced_models(folder: Path, embedded_model: Path) -> Path:
    """A models folder whose embedded model has prices (per million tokens)."""
    folder.mkdir()
    (folder / embedded_model.name).symlink_to(embedded_model)
    (folder / "models.toml").write_text(
        "[models.gemma-3-270m]\n"
        'provider = "llama_cpp"\n'
        f'path = "{embedded_model.name}"\n'
        "n_ctx = 2048\n"
        "price_in = 2.0\n"
        "price_out = 8.0\n"
    )
    return folder


def test_a_second_variant_calls_no_model(
    database: str, embedded_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NODELOOM_MODELS_DIR", str(priced_models(tmp_path / "m", embedded_model)))
    workflow_id, dataset_id = asyncio.run(stored(database))
    result = nodeloom(
        "eval", workflow_id, dataset_id,
        "--variant", "shout:tidy.template={{ text | trim | upper }}",
        "--evaluator", '{"output": "answer", "kind": "regex", "pattern": "."}',
        "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    evaluation = json.loads(result.stdout)
    assert evaluation["status"] == "done"
    report = evaluation["report"]
    assert report["progress"] == {"done": 10, "total": 10}
    current, shout = report["variants"]["current"], report["variants"]["shout"]
    assert current["tokens"] > 0
    assert shout["tokens"] == 0  # the model answered the first variant only
    # What the tokens cost by the registry's prices; the second variant paid nothing.
    assert 0 < current["cost"] <= current["tokens"] * 8.0 / 1_000_000
    assert current["cost"] >= current["tokens"] * 2.0 / 1_000_000
    assert shout["cost"] == 0
    # Per row: q, ask and the llm node taken over, tidy executed; out too, unless the answer
    # was the same upper-cased (a number, say).
    assert shout["executed_nodes"] + shout["reused_nodes"] == 10 * 5
    assert 10 <= shout["executed_nodes"] <= 20
    for row in report["rows"]:
        said = row["variants"]["current"]["outputs"]["answer"]
        assert row["variants"]["shout"]["outputs"]["answer"] == said.upper()

    table = nodeloom("eval", workflow_id, dataset_id)  # equals on the expected "?": all fail
    assert table.returncode == 0, table.stderr
    assert "current" in table.stdout
    assert "0%" in table.stdout


def test_a_model_judges_the_outputs(database: str, embedded_model: Path) -> None:
    workflow_id, dataset_id = asyncio.run(stored(database, QUESTIONS[:2]))
    judge = {"output": "answer", "kind": "llm_judge", "model": "gemma-3-270m",
             "rubric": "Score 1 if the output answers the question, else 0."}  # fmt: skip
    result = nodeloom("eval", workflow_id, dataset_id, "--evaluator", json.dumps(judge), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)["report"]
    current = report["variants"]["current"]
    assert current["judge_tokens"] > 0  # the judge's own usage, counted apart
    for row in report["rows"]:
        [verdict] = row["variants"]["current"]["scores"]
        assert verdict["kind"] == "llm_judge"
        assert 0 <= verdict["score"] <= 1  # written under the verdict's grammar
        assert verdict["passed"] == (verdict["score"] >= 0.5)

    unknown = {**judge, "model": "nope"}
    refused = nodeloom("eval", workflow_id, dataset_id, "--evaluator", json.dumps(unknown))
    assert refused.returncode == 1
    assert "unknown model 'nope'" in refused.stderr

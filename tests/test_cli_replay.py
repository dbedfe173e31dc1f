"""`nodeloom replay` of the summarise-then-critique example with the embedded model (SPEC §17):
the replay calls no model and gives the same outputs; a changed template upstream of an `llm`
node fails the replay naming it; `--on-miss call` calls the model for that node only."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.support.cli import database, nodeloom
from tests.support.documents import ROOT

__all__ = ["database"]  # the autouse fixture giving each test its own database

EXAMPLE = ROOT / "workflows" / "summarize-critique.json"
LLM_NODES = ("summarize", "critique")


def as_json(result: Any) -> dict[str, Any]:
    return dict(json.loads(result.stdout))


def model_calls(run: dict[str, Any]) -> list[str]:
    """The llm nodes of the run that called the model (those replayed did not)."""
    return [node for node in LLM_NODES if run["nodes"][node]["status"] == "succeeded"]


def test_a_replay_calls_no_model(embedded_model: Path) -> None:
    first = nodeloom("run", EXAMPLE, "--json")
    assert first.returncode == 0, first.stderr
    original = as_json(first)
    assert model_calls(original) == list(LLM_NODES)

    replayed = nodeloom("replay", original["id"], "--json")
    assert replayed.returncode == 0, replayed.stderr
    replay = as_json(replayed)
    assert replay["replay_of"] == original["id"]
    assert replay["outputs"] == original["outputs"]
    assert model_calls(replay) == []
    for node in LLM_NODES:
        assert replay["nodes"][node]["reason"] == f"replayed from run {original['id']}"
    assert replay["nodes"]["tidy_summary"]["status"] == "succeeded"  # executed again

    changed = "--set", "critique_prompt.template=Critique harshly: {{ summary }}"
    missed = nodeloom("replay", original["id"], *changed, "--json")
    assert missed.returncode == 1
    failed = as_json(missed)
    assert failed["status"] == "failed"
    assert "upstream changed: critique_prompt" in failed["nodes"]["critique"]["error"]
    assert model_calls(failed) == []

    called = nodeloom("replay", original["id"], *changed, "--on-miss", "call", "--json")
    assert called.returncode == 0, called.stderr
    assert model_calls(as_json(called)) == ["critique"]
    assert as_json(called)["outputs"]["summary"] == original["outputs"]["summary"]

"""The shipped example workflows, run as users run them: `nodeloom validate` and `nodeloom run`
in a real subprocess, with the embedded model where they use one."""

from __future__ import annotations

import contextlib
import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from engine.documents.document import decode_workflow, export_workflow
from server.examples import seed_examples
from tests.support.cli import ROOT, database, matches, nodeloom

__all__ = ["database"]  # the autouse fixture giving each test its own database and workspace

EXAMPLES = sorted((ROOT / "workflows").glob("*.json"))
MODEL_TYPES = {"llm", "agent"}


def uses_a_model(path: Path) -> bool:
    document = json.loads(path.read_text())
    bodies = document.get("subgraphs", {}).values()
    nodes = [*document["nodes"], *(node for body in bodies for node in body["nodes"])]
    return any(
        node["type"] in MODEL_TYPES or node["params"].get("mode") == "synthesis" for node in nodes
    )


def names_saved_workflows(path: Path) -> bool:
    """Whether the example runs another example (saved under its stable id) as a body."""
    return '"workflow": "wf_' in path.read_text()


def retrieves(path: Path) -> bool:
    """Whether the example searches a collection (one the examples' data folders make)."""
    return '"type": "retrieve"' in path.read_text()


def with_examples_saved(path: Path) -> Path:
    """The examples are added to the test's database first when ``path`` runs one of them or
    searches their collections, as `nodeloom serve` adds them."""
    if names_saved_workflows(path) or retrieves(path):
        seed_examples(os.environ["NODELOOM_DATABASE_URL"], ROOT / "workflows",
                      Path(os.environ["NODELOOM_WORKSPACE"]))
    return path


# The text display is the same for every workflow: shown for those without a model and one with.
TEXT_RUNS = [path for path in EXAMPLES if not uses_a_model(path) or path.name == "quiz.json"]

# What each shipped example outputs with its default inputs. A new example needs an entry here.
# A type (for LLM text) asks for a non-empty value of that type, a function is a check to pass.
EXPECTED_OUTPUTS: dict[str, dict[str, Any]] = {
    "greeting.json": {"greeting": "Hello, world! Welcome to nodeloom."},
    "triage.json": {
        "decision": "P1 - page the on-call engineer now: "
                    "URGENT: checkout is down for every customer",
    },
    "profile.json": {
        "profile": {
            "name": "Ada Lovelace", "initials": "AL", "born": 1815, "century": 19,
            "fields": ["mathematics", "computing"], "field_count": 2,
        },
        "summary": "Ada Lovelace (AL), born 1815 in century 19, worked on mathematics, computing.",
    },
    "quiz.json": {"answer": str},
    "handbook-answer.json": {"answer": str, "sources": ["handbook/holidays.md"]},
    "summarize-critique.json": {"summary": str, "critique": str},
    "vote-synthesis.json": {"majority": "Tokyo", "combined": str},
    "extract-person.json": {
        "person": {"name": "Grace Hopper", "born": 1906, "occupation": "computer scientist"},
    },
    "agent-calculator.json": {
        "answer": lambda answer: "408" in answer,
        "steps": lambda steps: steps[0] == {
            "step": 1, "tool": "calculator", "args": steps[0]["args"], "result": 408,
        } and "answer" in steps[-1],
    },
    "csv-pipeline.json": {
        "written": "slogans.txt",
        "lines": lambda lines: len(lines) == 3 and all(isinstance(line, str) for line in lines),
    },
    "greet-everyone.json": {
        "greetings": [f"Hello, {name}! Welcome to nodeloom." for name in ("Ada", "Grace", "Alan")],
    },
    "draft-critique-revise.json": {
        "slogan": str,
        "score": lambda score: isinstance(score, int) and 1 <= score <= 10,
        "rounds": lambda rounds: rounds in (1, 2, 3),
    },
}

RUN_KEYS = {
    "id", "workflow_id", "workflow_version", "parent_run_id", "status", "inputs", "outputs",
    "created_at", "started_at", "finished_at", "error", "nodes",
    "workflow_name", "root_run_id", "from_node", "changes", "trigger", "replay_of", "pinned_at",
}
NODE_KEYS = {
    "status", "reason", "reason_code", "cache_key", "output", "error", "attempt", "started_at",
    "finished_at", "duration_ms", "usage",
    "progress",  # a body node's (SPEC §12); null for the others
}


# -- the shipped examples ---------------------------------------------------------------------


def test_every_example_has_expected_outputs() -> None:
    assert EXAMPLES, "workflows/ holds no examples"
    assert {path.name for path in EXAMPLES} == set(EXPECTED_OUTPUTS)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.name)
def test_example_is_byte_stable(path: Path) -> None:
    data = path.read_bytes()
    assert export_workflow(decode_workflow(data)) == data


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.name)
def test_example_validates(path: Path) -> None:
    result = nodeloom("validate", with_examples_saved(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith(f"{path}: valid (")


@pytest.mark.parametrize("path", TEXT_RUNS, ids=lambda path: path.name)
def test_example_runs(path: Path) -> None:
    result = nodeloom("run", with_examples_saved(path))
    assert result.returncode == 0, result.stderr
    expected = EXPECTED_OUTPUTS[path.name]
    shown: dict[str, Any] = {}
    for line in result.stdout.splitlines():
        name, separator, text = line.partition(": ")
        assert separator, line
        shown[name] = text
        if expected.get(name) is not str and not isinstance(expected.get(name), str):
            with contextlib.suppress(json.JSONDecodeError):
                shown[name] = json.loads(text)
    assert set(shown) == set(expected)
    for name, value in expected.items():
        assert matches(shown[name], value), (name, shown[name])
    assert " succeeded in " in result.stderr


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.name)
def test_example_runs_as_json(path: Path) -> None:
    result = nodeloom("run", with_examples_saved(path), "--json")
    assert result.returncode == 0, result.stderr
    run = json.loads(result.stdout)  # stdout holds the JSON and nothing else
    assert set(run) == RUN_KEYS
    assert run["id"].startswith("run_")
    assert run["workflow_id"] is None
    assert run["workflow_version"] is None
    assert run["parent_run_id"] is None
    assert run["trigger"] == "manual"
    assert run["status"] == "succeeded"
    assert run["error"] is None
    expected = EXPECTED_OUTPUTS[path.name]
    assert set(run["outputs"]) == set(expected)
    assert all(matches(run["outputs"][name], value) for name, value in expected.items())
    for stamp in ("created_at", "started_at", "finished_at"):
        datetime.fromisoformat(run[stamp])
    document = json.loads(path.read_text())
    top_level = {node_id for node_id in run["nodes"] if "/" not in node_id}
    assert top_level == {node["id"] for node in document["nodes"]}
    # The nodes inside bodies, by path (`slogans[2]/write`), each a node of the body.
    bodies = document.get("subgraphs", {})
    inner = {node["id"] for body in bodies.values() for node in body["nodes"]}
    for node in document["nodes"]:  # a saved workflow run as a body: its nodes
        if "workflow" in node["params"]:
            saved = ROOT / "workflows" / (node["params"]["workflow"].removeprefix("wf_") + ".json")
            inner |= {inner_node["id"] for inner_node in json.loads(saved.read_text())["nodes"]}
    assert {node_id.rpartition("/")[2] for node_id in run["nodes"].keys() - top_level} <= inner
    for node in run["nodes"].values():
        assert set(node) == NODE_KEYS
        assert node["status"] in ("succeeded", "skipped")
        if node["status"] == "succeeded":
            assert len(node["cache_key"]) == 64
            assert node["attempt"] == 1
            assert node["duration_ms"] >= 0


def test_triage_routes_and_reports_the_skipped_branch() -> None:
    result = nodeloom("run", ROOT / "workflows/triage.json", "-i", "ticket=Please fix a typo")
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        "decision: P3 - add to the backlog for the next planning: Please fix a typo\n"
    )
    assert "[page] skipped: upstream skipped: is_urgent.true\n" in result.stderr
    assert "[backlog] succeeded " in result.stderr


def test_profile_inputs_are_coerced_from_text() -> None:
    result = nodeloom("run", ROOT / "workflows/profile.json", "--json", "-i", "name=Grace Hopper",
                      "-i", "born=1906", "-i", 'fields=["compilers", "COBOL"]')
    assert result.returncode == 0, result.stderr
    run = json.loads(result.stdout)
    assert run["inputs"] == {"name": "Grace Hopper", "born": 1906, "fields": ["compilers", "COBOL"]}
    assert run["outputs"]["summary"] == (
        "Grace Hopper (GH), born 1906 in century 20, worked on compilers, COBOL."
    )


def test_csv_pipeline_writes_one_line_per_row(tmp_path: Path) -> None:
    result = nodeloom("run", ROOT / "workflows/csv-pipeline.json", "--json")
    assert result.returncode == 0, result.stderr
    run = json.loads(result.stdout)
    rows = (ROOT / "workflows/data/products.csv").read_text().splitlines()[1:]
    written = (tmp_path / "workspace" / "slogans.txt").read_text().splitlines()
    assert written == run["outputs"]["lines"]
    assert len(written) == len(rows) == 3
    # One run of the `slogan` body per row, its `llm` node's usage its own.
    assert run["nodes"]["slogans"]["progress"] == {"done": 3, "failed": 0, "total": 3}
    assert run["nodes"]["slogans[1]/prompt"]["output"]["text"].endswith(
        "Product: lamp, made of brass, for reading\nSlogan:"
    )
    assert all(run["nodes"][f"slogans[{row}]/write"]["usage"]["completion_tokens"] > 0
               for row in range(3))


def test_a_csv_row_changed_writes_only_its_line_again(tmp_path: Path) -> None:
    first = json.loads(nodeloom("run", ROOT / "workflows/csv-pipeline.json", "--json").stdout)
    rows = (tmp_path / "workspace" / "products.csv").read_text().replace("brass", "glass")
    (tmp_path / "workspace" / "products.csv").write_text(rows)
    result = nodeloom("rerun", first["id"], "--json")
    assert result.returncode == 0, result.stderr
    child = json.loads(result.stdout)
    executed = sorted(n for n, node in child["nodes"].items() if node["status"] == "succeeded")
    assert [n for n in executed if n.startswith("slogans[")] == [
        f"slogans[1]/{node}" for node in ("line", "prompt", "row", "tidy", "write")
    ]
    assert child["nodes"]["slogans[0]/write"]["reason"] == f"reused from run {first['id']}"


def test_a_saved_example_runs_inside_another_at_the_version_it_had(tmp_path: Path) -> None:
    result = nodeloom("run", with_examples_saved(ROOT / "workflows/greet-everyone.json"), "--json")
    assert result.returncode == 0, result.stderr
    run = json.loads(result.stdout)
    assert run["nodes"]["greet_each[1]/greet"]["output"] == {
        "text": "Hello, Grace! Welcome to nodeloom."
    }
    assert run["nodes"]["greet_each"]["progress"] == {"done": 3, "failed": 0, "total": 3}


def test_an_example_naming_a_saved_workflow_not_there_says_so() -> None:
    result = nodeloom("validate", ROOT / "workflows/greet-everyone.json")
    assert result.returncode == 1
    assert "workflow 'wf_greeting' is not a saved workflow this document can use" in result.stdout

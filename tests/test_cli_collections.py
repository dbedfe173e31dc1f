"""`nodeloom collections create|add|search|list` in a real subprocess, over the test's own
database and workspace (the examples' data files, among them `handbook/`), and a workflow with
a `retrieve` node run by `nodeloom run` against the collection made."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.cli import database, nodeloom

__all__ = ["database"]  # the autouse fixture giving each test its own database and workspace

FINDING = {
    "schema_version": 1,
    "name": "Finding",
    "nodes": [
        {"id": "q", "type": "input", "params": {"name": "q", "schema": {"type": "string"}}},
        {"id": "find", "type": "retrieve", "params": {"collection": "handbook", "top_k": 1}},
        {"id": "context", "type": "output", "params": {"name": "context"}},
    ],
    "edges": [
        {"from": "q.value", "to": "find.query"},
        {"from": "find.context", "to": "context.value"},
    ],
}


def test_create_add_search_list_and_run(tmp_path: Path) -> None:
    made = nodeloom("collections", "create", "handbook", "--chunk-size", "400")
    assert made.returncode == 0, made.stderr
    assert made.stdout.startswith("col_")
    added = nodeloom("collections", "add", "handbook", "handbook/*.md")
    assert added.returncode == 0, added.stderr
    assert added.stdout == "done: 4 of 4 files (0 unchanged, 0 failed, 0 removed)\n"
    assert "indexed 4/4 files" in added.stderr  # progress, a line per file off a terminal
    again = nodeloom("collections", "add", "handbook", "handbook/*.md")
    assert again.stdout == "done: 4 of 4 files (4 unchanged, 0 failed, 0 removed)\n"

    found = nodeloom("collections", "search", "handbook", "lost phone?", "-k", "1", "--json")
    assert found.returncode == 0, found.stderr
    [hit] = json.loads(found.stdout)["results"]
    assert hit["source"] == "handbook/security.md"
    assert "extension 4242" in hit["text"]
    shown = nodeloom("collections", "search", "handbook", "meals on a trip", "-k", "1")
    assert shown.stdout.startswith("[1] handbook/expenses.md (chunk ")
    listed = nodeloom("collections", "list")
    assert listed.stdout.startswith("handbook (col_")
    assert ": 4 documents, " in listed.stdout

    workflow = tmp_path / "finding.json"
    workflow.write_text(json.dumps(FINDING))
    ran = nodeloom("run", workflow, "-i", "q=How much holiday do we get?", "--json")
    assert ran.returncode == 0, ran.stderr
    context = json.loads(ran.stdout)["outputs"]["context"]
    assert context.startswith("[1] (handbook/holidays.md, chunk 0)\n# Holidays\n")


def test_bad_input_says_what_is_wrong(tmp_path: Path) -> None:
    assert nodeloom("collections", "create", "docs").returncode == 0
    outside = nodeloom("collections", "add", "docs", "../*.md")
    assert outside.returncode == 1
    assert outside.stderr == "nodeloom: paths/0: path '../*.md' is outside the workspace folder\n"
    unknown = nodeloom("collections", "search", "nope", "anything")
    assert unknown.returncode == 1
    assert unknown.stderr == "nodeloom: collection nope not found\n"
    workflow = tmp_path / "finding.json"
    workflow.write_text(json.dumps(FINDING))  # names `handbook`, which is not there
    ran = nodeloom("run", workflow, "-i", "q=holiday")
    assert ran.returncode == 1
    assert "unknown collection 'handbook' [unknown_collection]" in ran.stderr

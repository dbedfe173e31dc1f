"""`nodeloom rerun`, `runs` and `resume` as users run them: real subprocesses, a real database."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.cli import assert_clean_failure, database, nodeloom, write_workflow

__all__ = ["database"]  # the autouse fixture giving each test its own database


@pytest.fixture
def chain(tmp_path: Path) -> Path:
    return write_workflow(
        tmp_path / "chain.json",
        [
            {
                "id": "n",
                "type": "input",
                "params": {"name": "n", "schema": {"type": "integer"}, "default": 1},
            },
            {"id": "add", "type": "template", "params": {"template": "{{ n + 1 }}"}},
            {"id": "say", "type": "template", "params": {"template": "n+1 = {{ t }}"}},
            {"id": "out", "type": "output", "params": {"name": "said"}},
        ],
        [("n.value", "add.n"), ("add.text", "say.t"), ("say.text", "out.value")],
        name="chain",
    )


def run_json(*args: str | Path) -> dict:  # type: ignore[type-arg]
    result = nodeloom(*args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_run_rerun_and_tree(chain: Path) -> None:
    parent = run_json("run", chain, "-i", "n=4")
    assert parent["outputs"] == {"said": "n+1 = 5"}

    shown = nodeloom("rerun", parent["id"], "--set", "say.template=n plus one is {{ t }}")
    assert f"[add] cached: reused from run {parent['id']}" in shown.stderr
    child = run_json("rerun", parent["id"], "--set", "say.template=n plus one is {{ t }}")
    assert child["parent_run_id"] == parent["id"]
    assert child["outputs"] == {"said": "n plus one is 5"}
    assert child["nodes"]["add"]["status"] == "cached"
    assert child["nodes"]["add"]["reason"] == f"reused from run {parent['id']}"
    assert child["nodes"]["say"]["reason"] == "params changed: template"

    forced = run_json("rerun", parent["id"], "--from", "say", "-i", "n=9")
    assert forced["outputs"] == {"said": "n+1 = 10"}
    assert forced["nodes"]["n"]["reason"] == "input changed: n"

    listing = nodeloom("runs")
    assert listing.returncode == 0, listing.stderr
    for run in (parent, child, forced):
        assert run["id"] in listing.stdout

    tree = nodeloom("runs", "--tree", child["id"])
    assert tree.returncode == 0, tree.stderr
    lines = tree.stdout.splitlines()
    assert parent["id"] in lines[0]
    assert any(child["id"] in line and "say.template=" in line and "◀" in line for line in lines)
    assert any(forced["id"] in line and "from say" in line and "n=9" in line for line in lines)


def test_plain_rerun_prints_outputs_and_reasons(chain: Path) -> None:
    parent = run_json("run", chain)
    result = nodeloom("rerun", parent["id"], "--set", "n.default=2")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "said: n+1 = 2\n"  # the default changed, but the input value stayed 1
    assert "[add] cached: reused from run" in result.stderr


def test_bad_reruns_are_one_clear_line(chain: Path) -> None:
    parent = run_json("run", chain)
    assert_clean_failure(nodeloom("rerun", "run_nope"), "run run_nope not found")
    assert_clean_failure(
        nodeloom("rerun", parent["id"], "--from", "ghost"), "from_node 'ghost' is not a node of run"
    )
    assert_clean_failure(
        nodeloom("rerun", parent["id"], "--set", "add.nothing=1"),
        "template node 'add' has no param 'nothing'",
    )
    assert_clean_failure(
        nodeloom("rerun", parent["id"], "--set", "plain=1"), "--set needs NODE.PARAM=VALUE"
    )
    assert_clean_failure(
        nodeloom("rerun", parent["id"], "-i", "n=many"), "'many' is not of type 'integer'"
    )
    assert_clean_failure(nodeloom("resume", parent["id"]), "only an interrupted run can be resumed")
    assert_clean_failure(nodeloom("runs", "--tree", "run_nope"), "run run_nope not found")


def test_unreachable_database_is_one_clear_line(chain: Path) -> None:
    result = nodeloom("run", chain, "--db", "postgresql://nobody@127.0.0.1:1/none")
    assert_clean_failure(result, "cannot use database postgresql+asyncpg://nobody@127.0.0.1:1/none")


def test_bad_settings_stop_with_one_line(chain: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NODELOOM_LEASE_TIMEOUT_S", "soon")
    assert_clean_failure(
        nodeloom("run", chain),
        "NODELOOM_LEASE_TIMEOUT_S must be a positive number of seconds, got 'soon'",
    )


def test_a_bad_item_limit_stops_with_one_line(
    chain: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NODELOOM_MAP_MAX_ITEMS", "-3")
    assert_clean_failure(
        nodeloom("run", chain),
        "NODELOOM_MAP_MAX_ITEMS must be a positive whole number, got '-3'",
    )


def test_file_paths_are_checked_against_the_workspace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NODELOOM_WORKSPACE", str(tmp_path / "space"))
    path = write_workflow(
        tmp_path / "read.json",
        [
            {"id": "read", "type": "file_read", "params": {"path": "/etc/passwd"}},
            {"id": "out", "type": "output", "params": {"name": "o"}},
        ],
        [("read.content", "out.value")],
    )
    result = nodeloom("validate", path)
    assert result.returncode == 1
    assert "path_outside_workspace" in result.stdout


def test_a_run_that_waits_for_an_answer_says_how_to_answer(tmp_path: Path) -> None:
    asking = write_workflow(
        tmp_path / "asking.json",
        [
            {"id": "ask", "type": "human_input", "params": {"prompt": "Go?"}},
            {"id": "out", "type": "output", "params": {"name": "answer"}},
        ],
        [("ask.answer", "out.value")],
    )
    result = nodeloom("run", asking)
    assert result.returncode == 3, result.stderr
    assert "waits for an answer to ask" in result.stderr
    assert "/nodes/NODE/answer" in result.stderr

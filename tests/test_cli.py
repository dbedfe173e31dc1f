"""The `nodeloom` command as users run it: a real subprocess over real workflow files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.cli import (
    ROOT,
    assert_clean_failure,
    database,
    nodeloom,
    write_workflow,
)

__all__ = ["database"]  # the autouse fixture giving each test its own database

# The CLI with one extra node type, `stream`, which emits tokens slowly: the way to test token
# display and Ctrl+C without an LLM.
DRIVER = (sys.executable, "-m", "tests.support.stream_cli")


@pytest.fixture
def counter(tmp_path: Path) -> Path:
    """``n`` (an integer input) → ``n + 1`` as text."""
    return write_workflow(tmp_path / "counter.json", [
        {"id": "n", "type": "input", "params": {"name": "n", "schema": {"type": "integer"}}},
        {"id": "add", "type": "template", "params": {"template": "{{ n + 1 }}"}},
        {"id": "out", "type": "output", "params": {"name": "next"}},
    ], [("n.value", "add.n"), ("add.text", "out.value")])


def stream_workflow(tmp_path: Path, words: int, delay_s: float) -> Path:
    """``topic`` → ``writer`` (a `stream` node, see DRIVER) → the output ``text``."""
    return write_workflow(tmp_path / "stream.json", [
        {"id": "topic", "type": "input",
         "params": {"name": "topic", "schema": {"type": "string"}, "default": "bees"}},
        {"id": "writer", "type": "stream", "params": {"words": words, "delay_s": delay_s}},
        {"id": "out", "type": "output", "params": {"name": "text"}},
    ], [("topic.value", "writer.prompt"), ("writer.text", "out.value")])


# -- inputs -----------------------------------------------------------------------------------


def test_input_is_coerced_to_the_schema_type(counter: Path) -> None:
    result = nodeloom("run", counter, "-i", "n=3", "--json")
    assert result.returncode == 0, result.stderr
    run = json.loads(result.stdout)
    assert run["inputs"] == {"n": 3}
    assert run["outputs"] == {"next": "4"}


def test_bad_input_value_is_a_clear_error(counter: Path) -> None:
    result = nodeloom("run", counter, "-i", "n=three")
    assert_clean_failure(result, "invalid inputs", "'n'", "integer")
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1


def test_missing_and_unknown_inputs_are_named(counter: Path) -> None:
    result = nodeloom("run", counter, "-i", "m=1")
    assert_clean_failure(result, "unknown input 'm'", "input 'n' is required")


def test_input_without_equals_is_a_usage_error(counter: Path) -> None:
    result = nodeloom("run", counter, "-i", "n")
    assert result.returncode == 2
    assert "expected NAME=VALUE" in result.stderr
    assert "Traceback" not in result.stderr


# -- files that are not valid workflows -------------------------------------------------------


def test_validate_lists_every_error_with_its_node(tmp_path: Path) -> None:
    path = write_workflow(tmp_path / "broken.json", [
        {"id": "src", "type": "input", "params": {"name": "src", "schema": {"type": "string"}}},
        {"id": "src", "type": "template", "params": {"template": "{{ x }}"}},
        {"id": "mystery", "type": "no_such_type", "params": {}},
        {"id": "bad_tpl", "type": "template", "params": {"template": "{% if %}"}},
        {"id": "out", "type": "output", "params": {"name": "result"}},
    ], [("src.value", "out.value"), ("ghost.text", "out.value")])
    result = nodeloom("validate", path)
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[-1] == f"{path}: invalid ({len(lines) - 1} errors)"
    errors = "\n".join(lines[:-1])
    for expected in (
        "src: node id 'src' is used more than once [duplicate_node_id] (at /nodes/1/id)",
        "mystery: unknown node type 'no_such_type' [unknown_node_type] (at /nodes/2/type)",
        "bad_tpl: line 1:",
        "[template_syntax] (at /nodes/3/params/template)",
        "ghost.text: edge `from` names node 'ghost', which does not exist [missing_node]",
    ):
        assert expected in errors


def test_run_of_an_invalid_workflow_prints_errors_to_stderr(tmp_path: Path) -> None:
    path = write_workflow(tmp_path / "broken.json", [
        {"id": "out", "type": "output", "params": {"name": "result"}},
    ], [])
    result = nodeloom("run", path)
    assert_clean_failure(result, "out.value: input out.value needs an edge [missing_input]")
    assert result.stdout == ""


@pytest.mark.parametrize("command", ["validate", "run"])
@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"schema_version": 1, "name": "x",\n "nodes": [}', "not valid JSON: JSON is malformed"),
        (b'{"schema_version": 1, "name": "x", "nodes": [', "not valid JSON: Input data was"),
        (b"", "the file is empty"),
        (b'{"schema_version": 2, "name": "x", "nodes": []}', "not a workflow document"),
        (b"\xff\xfe", "not valid JSON"),
    ],
    ids=["malformed", "truncated", "empty", "wrong-version", "binary"],
)
def test_unreadable_documents_are_one_clear_line(tmp_path: Path, command: str, content: bytes,
                                                 message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    result = nodeloom(command, path)
    assert_clean_failure(result, message, str(path))
    assert len(result.stderr.splitlines()) == 1
    assert result.stdout == ""


def test_malformed_json_names_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_bytes(b'{\n  "schema_version": 1,\n  "name": "x",,\n  "nodes": []\n}\n')
    result = nodeloom("validate", path)
    assert_clean_failure(result, "(line 3, column 15)")


@pytest.mark.parametrize("command", ["validate", "run"])
def test_missing_file_is_one_clear_line(tmp_path: Path, command: str) -> None:
    result = nodeloom(command, tmp_path / "nowhere.json")
    assert_clean_failure(result, "nowhere.json: no such file")
    assert len(result.stderr.splitlines()) == 1


def test_directory_is_one_clear_line(tmp_path: Path) -> None:
    result = nodeloom("validate", tmp_path)
    assert_clean_failure(result, "is a directory")


# -- failing and cancelled runs ---------------------------------------------------------------


@pytest.fixture
def failing(tmp_path: Path) -> Path:
    """``bad`` renders text that is not JSON with ``format: json``, so it fails."""
    return write_workflow(tmp_path / "failing.json", [
        {"id": "x", "type": "input", "params": {"name": "x", "default": "hi"}},
        {"id": "bad", "type": "template", "params": {"template": "{{ x }}!", "format": "json"}},
        {"id": "ok", "type": "template", "params": {"template": "fine: {{ x }}"}},
        {"id": "broken", "type": "output", "params": {"name": "broken"}},
        {"id": "fine", "type": "output", "params": {"name": "fine"}},
    ], [("x.value", "bad.x"), ("bad.json", "broken.value"), ("x.value", "ok.x"),
        ("ok.text", "fine.value")])


def test_failing_run_exits_1_with_the_error(failing: Path) -> None:
    result = nodeloom("run", failing)
    assert_clean_failure(result, "[bad] failed: rendered text is not JSON",
                         "[broken] skipped: upstream failed: bad",
                         "failed: node bad failed: rendered text is not JSON")
    assert result.stdout == "fine: fine: hi\n"  # the branch that did not fail still delivers


def test_failing_run_as_json(failing: Path) -> None:
    result = nodeloom("run", failing, "--json")
    assert result.returncode == 1
    run = json.loads(result.stdout)
    assert run["status"] == "failed"
    assert run["error"].startswith("node bad failed: rendered text is not JSON")
    assert run["nodes"]["bad"]["status"] == "failed"
    assert run["nodes"]["bad"]["error"].startswith("rendered text is not JSON")
    assert run["nodes"]["broken"]["status"] == "skipped"
    assert run["outputs"] == {"fine": "fine: hi"}


@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_ctrl_c_cancels_the_run(tmp_path: Path, as_json: bool) -> None:
    workflow = stream_workflow(tmp_path, words=10_000, delay_s=0.05)
    command = [*DRIVER, "run", str(workflow), *(["--json"] if as_json else [])]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    try:
        assert process.stderr is not None
        first = process.stderr.readline()
        assert " started: " in first, first
        time.sleep(0.3)
        interrupted = time.monotonic()
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=10)
    finally:
        process.kill()
    assert time.monotonic() - interrupted < 2
    assert process.returncode == 130
    assert "Traceback" not in stderr
    assert "[writer] cancelled" in stderr
    assert stderr.rstrip().endswith("cancelled")
    if as_json:
        run = json.loads(stdout)
        assert run["status"] == "cancelled"
        assert run["nodes"]["writer"]["status"] == "cancelled"
        assert run["nodes"]["out"]["status"] == "cancelled"
    else:
        assert stdout == ""


# -- the live display on a terminal -----------------------------------------------------------


def on_a_terminal(workflow: Path) -> str:
    """What `run` of ``workflow`` draws on a pseudo-terminal, once it exited with 0."""
    import pty  # POSIX only

    primary, secondary = pty.openpty()
    env = {**os.environ, "COLUMNS": "120", "TERM": "xterm-256color"}
    process = subprocess.Popen([*DRIVER, "run", str(workflow)], cwd=ROOT,
                               stdin=secondary, stdout=secondary, stderr=secondary, env=env)
    os.close(secondary)
    screen = b""
    while True:
        try:
            chunk = os.read(primary, 65536)
        except OSError:  # the terminal closes when the process ends
            break
        if not chunk:
            break
        screen += chunk
    os.close(primary)
    assert process.wait(timeout=30) == 0
    return screen.decode(errors="replace")


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
def test_live_display_on_a_terminal_shows_nodes_and_tokens(tmp_path: Path) -> None:
    workflow = stream_workflow(tmp_path, words=5, delay_s=0.05)
    text = on_a_terminal(workflow)
    assert "Traceback" not in text
    for node in ("topic", "writer", "out"):
        assert node in text
    assert "succeeded" in text
    assert "word0 word1 word2 word3 word4" in text  # the streamed tokens on the writer's row
    assert "text: word0 word1 word2 word3 word4" in text  # the output after the display


# -- bodies -------------------------------------------------------------------------------------


def map_workflow(tmp_path: Path) -> Path:
    """``words`` → a map of ``shout`` (a template that fails on a number) → ``loud``."""
    path = tmp_path / "map.json"
    document = {
        "schema_version": 1, "name": "shout each",
        "subgraphs": {"shout": {
            "nodes": [
                {"id": "w", "type": "input", "params": {"name": "w"}},
                {"id": "up", "type": "template", "params": {"template": "{{ w.upper() }}"}},
                {"id": "out", "type": "output", "params": {"name": "loud"}},
            ],
            "edges": [{"from": "w.value", "to": "up.w"}, {"from": "up.text", "to": "out.value"}],
        }},
        "nodes": [
            {"id": "words", "type": "input",
             "params": {"name": "words", "schema": {"type": "array"}, "default": ["a", 7, "c"]}},
            {"id": "m", "type": "map", "params": {"graph": "shout", "on_item_error": "null"}},
            {"id": "loud", "type": "output", "params": {"name": "loud"}},
        ],
        "edges": [{"from": "words.value", "to": "m.items"}, {"from": "m.loud", "to": "loud.value"}],
    }
    path.write_text(json.dumps(document))
    return path


def test_a_map_shows_its_progress_and_its_items_failures_not_each_node(tmp_path: Path) -> None:
    result = nodeloom("run", map_workflow(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout == 'loud: ["A",null,"C"]\n'
    assert "[m] 3/3 done, 1 failed\n" in result.stderr
    assert "[m[1]/up] failed: " in result.stderr
    assert "[m[0]/up]" not in result.stderr  # the nodes inside are not listed one by one


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
def test_live_display_shows_a_maps_progress(tmp_path: Path) -> None:
    text = on_a_terminal(map_workflow(tmp_path))
    assert "Traceback" not in text
    assert "3/3 done, 1 failed" in text

"""`nodeloom mcp tools`, and `nodeloom validate` / `run` / `rerun` of workflows calling the tools
of a real MCP server (tests/support/mcp_server.py) named in mcp.toml."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from server.cli import main
from tests.support.cli import database, nodeloom, write_workflow
from tests.support.documents import ROOT

__all__ = ["database"]  # the autouse fixture giving each test its own database and workspace

SERVER = ROOT / "tests" / "support" / "mcp_server.py"


@pytest.fixture
def mcp_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "mcp.toml"
    path.write_text(
        f"[servers.test]\ncommand = {json.dumps(sys.executable)}\n"
        f"args = [{json.dumps(str(SERVER))}]\ntimeout_s = 10\n"
    )
    monkeypatch.setenv("NODELOOM_MCP_CONFIG", str(path))
    return path


def adding(path: Path, tool: str = "mcp.test.add") -> Path:
    return write_workflow(
        path,
        [
            {"id": "args", "type": "input",
             "params": {"name": "args", "schema": {"type": "object"}, "default": {"a": 2, "b": 3}}},
            {"id": "add", "type": "tool", "params": {"tool": tool}},
            {"id": "out", "type": "output", "params": {"name": "result"}},
        ],
        [("args.value", "add.args"), ("add.result", "out.value")],
    )


def test_mcp_tools_lists_each_servers_tools(
    mcp_toml: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["mcp", "tools"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "test: 10 tools"
    assert "  mcp.test.add\tAdds two numbers." in lines  # the description's first line
    assert "  mcp.test.pid\tThis server's process id." in lines


def test_mcp_tools_names_a_server_that_cannot_be_reached(
    mcp_toml: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mcp_toml.write_text(mcp_toml.read_text() + '[servers.gone]\ncommand = "/no/such/mcp-server"\n')
    assert main(["mcp", "tools"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == (
        "gone: cannot be reached: cannot start /no/such/mcp-server: No such file or directory"
    )
    assert "test: 10 tools" in lines


def test_mcp_tools_without_mcp_toml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NODELOOM_MCP_CONFIG", str(tmp_path / "absent.toml"))
    assert main(["mcp", "tools"]) == 0
    assert capsys.readouterr().err == (
        f"no MCP servers: {tmp_path / 'absent.toml'} does not exist "
        "(set $NODELOOM_MCP_CONFIG to name another file)\n"
    )


def test_a_bad_mcp_toml_stops_the_command_with_one_line(
    mcp_toml: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mcp_toml.write_text('[servers.test]\ncommand = "x"\nurl = "http://h/mcp"\n')
    assert main(["validate", str(adding(tmp_path / "flow.json"))]) == 1
    assert capsys.readouterr().err == (
        f"nodeloom: {mcp_toml}: [servers.test]: needs either `command` (stdio) or `url` (HTTP), "
        "not both\n"
    )


def test_validate_knows_the_mcp_tools(mcp_toml: Path, tmp_path: Path) -> None:
    good = nodeloom("validate", adding(tmp_path / "good.json"))
    assert good.returncode == 0, good.stderr
    assert good.stdout.startswith(f"{tmp_path / 'good.json'}: valid (")
    bad = nodeloom("validate", adding(tmp_path / "bad.json", "mcp.test.nope"))
    assert bad.returncode == 1
    assert "unknown tool 'mcp.test.nope'" in bad.stdout


def test_run_and_rerun_call_the_mcp_tool(mcp_toml: Path, tmp_path: Path) -> None:
    ran = nodeloom("run", adding(tmp_path / "flow.json"))
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == 'result: {"sum":5}\n'
    found = re.search(r"run (\S+) succeeded", ran.stderr)
    assert found, ran.stderr
    rerun = nodeloom("rerun", found[1], "-i", 'args={"a": 10, "b": 1}')
    assert rerun.returncode == 0, rerun.stderr
    assert rerun.stdout == 'result: {"sum":11}\n'


def test_a_run_calls_the_stdio_server_it_listed_the_tools_of(
    mcp_toml: Path, tmp_path: Path
) -> None:
    starts = tmp_path / "starts"
    env = f"env = {{ MCP_TEST_STARTS = {json.dumps(str(starts))} }}\n"
    mcp_toml.write_text(mcp_toml.read_text() + env)
    flow = write_workflow(
        tmp_path / "pid.json",
        [
            {"id": "args", "type": "input",
             "params": {"name": "args", "schema": {"type": "object"}, "default": {}}},
            {"id": "pid", "type": "tool", "params": {"tool": "mcp.test.pid"}},
            {"id": "out", "type": "output", "params": {"name": "result"}},
        ],
        [("args.value", "pid.args"), ("pid.result", "out.value")],
    )
    ran = nodeloom("run", flow)
    assert ran.returncode == 0, ran.stderr
    (started,) = starts.read_text().split()  # started once: to list its tools, then called
    assert ran.stdout == f'result: {{"pid":{started}}}\n'

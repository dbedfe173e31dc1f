"""`mcp.toml` (SPEC §15): the servers an operator lists, read strictly; a bad file names the
server and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.settings import SettingInvalid
from nodes.tools.mcp import McpServers
from nodes.tools.mcp_config import HttpServer, ServerConfig, StdioServer, parse_config


def test_mcp_toml_is_read(tmp_path: Path) -> None:
    path = tmp_path / "mcp.toml"
    path.write_text(
        '[servers.files]\ncommand = "npx"\nargs = ["-y", "server"]\nenv = { LEVEL = "warn" }\n'
        '[servers.search]\nurl = "https://mcp.example.com/mcp"\n'
        'headers_env = { Authorization = "SEARCH_TOKEN" }\ntimeout_s = 10\n'
        "max_result_bytes = 65536\n"
    )
    servers = McpServers.from_environ({"NODELOOM_MCP_CONFIG": str(path)})
    assert servers is not None
    assert servers.names == ["files", "search"]
    assert [c.config for c in servers.connections.values()] == [
        ServerConfig("files", StdioServer("npx", ("-y", "server"), {"LEVEL": "warn"})),
        ServerConfig(
            "search",
            HttpServer("https://mcp.example.com/mcp", {"Authorization": "SEARCH_TOKEN"}),
            timeout_s=10,
            max_result_bytes=65536,
        ),
    ]


def test_no_mcp_toml_means_no_servers(tmp_path: Path) -> None:
    assert McpServers.from_environ({"NODELOOM_MCP_CONFIG": str(tmp_path / "mcp.toml")}) is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[servers.a]\ncommand = "x"\nurl = "http://h/mcp"\n',
         "[servers.a]: needs either `command` (stdio) or `url` (HTTP), not both"),
        ("[servers.a]\ntimeout_s = 3\n",
         "[servers.a]: needs either `command` (stdio) or `url` (HTTP), not both"),
        ('[servers.a]\ncommand = "x"\ncwd = "/"\n',
         "[servers.a]: unknown key 'cwd' (keys: args, command, env, headers_env, "
         "max_result_bytes, timeout_s, url)"),
        ('[servers.a]\ncommand = "x"\nargs = "-v"\n',
         "[servers.a]: `args` must be a list of strings"),
        ('[servers.a]\ncommand = "x"\nenv = { A = 1 }\n', "[servers.a]: env.A must be a string"),
        ('[servers.a]\nurl = "ftp://h"\n', "[servers.a]: `url` must be an http:// or https:// URL"),
        ('[servers.a]\nurl = "http://h"\nargs = []\n', "[servers.a]: `args` is for `command`"),
        ('[servers.a]\nurl = "http://h"\nheaders_env = { X = "not a name" }\n',
         "[servers.a]: headers_env.X must name an environment variable, got 'not a name'"),
        ('[servers.a]\ncommand = "x"\ntimeout_s = 0\n',
         "[servers.a]: `timeout_s` must be a positive number of seconds"),
        ('[servers.a]\ncommand = "x"\nmax_result_bytes = 1.5\n',
         "[servers.a]: `max_result_bytes` must be a positive whole number"),
        ('[servers."a.b"]\ncommand = "x"\n',
         "[servers.a.b]: a server name is 1-64 of A-Z a-z 0-9 _ -"),
        ('[server.a]\ncommand = "x"\n', "unknown key 'server' (expected [servers.NAME])"),
        ("[servers.a\n", "not valid TOML"),
    ],
)
def test_a_bad_mcp_toml_names_the_server_and_the_key(text: str, message: str) -> None:
    with pytest.raises(SettingInvalid) as caught:
        parse_config(text, "mcp.toml")
    assert caught.value.detail.startswith("mcp.toml: ")
    assert message in caught.value.detail


def test_mcp_tool_names_are_held_beside_the_others() -> None:
    from nodes.tools.registry import MCP_NAME_PATTERN, NAME_PATTERN

    assert MCP_NAME_PATTERN.match("mcp.files.read.file-v2")
    assert not MCP_NAME_PATTERN.match("mcp.files")
    assert not MCP_NAME_PATTERN.match("mcp.a b.c")
    assert not NAME_PATTERN.match("mcp.files.read")

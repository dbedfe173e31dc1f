"""`mcp.toml`: the MCP servers the operator trusts (SPEC §15), read strictly.

    [servers.files]                 # stdio: nodeloom starts the command
    command = "npx"
    args = ["-y", "@modelcontextprotocol/server-filesystem", "/srv/data"]
    env = { LOG_LEVEL = "warn" }

    [servers.search]                # Streamable HTTP
    url = "https://mcp.example.com/mcp"
    headers_env = { Authorization = "SEARCH_MCP_AUTHORIZATION" }
    timeout_s = 10                  # each call (and connecting); default 30
    max_result_bytes = 65536        # default 1 MiB

Workflows name servers only by name: nothing in a workflow can start a process.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.settings import SettingInvalid

__all__ = [
    "CONFIG_VARIABLE",
    "HttpServer",
    "ServerConfig",
    "StdioServer",
    "config_path",
    "load_config",
    "parse_config",
]

CONFIG_VARIABLE = "NODELOOM_MCP_CONFIG"
DEFAULT_PATH = "mcp.toml"
DEFAULT_TIMEOUT_S = 30.0
DEFAULT_MAX_RESULT_BYTES = 1024 * 1024
SERVER_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")  # an HTTP token
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
KEYS = {"command", "args", "env", "url", "headers_env", "timeout_s", "max_result_bytes"}


@dataclass(frozen=True, slots=True)
class StdioServer:
    """A server nodeloom starts as a child process and talks to over its stdin and stdout."""

    command: str
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)  # over the SDK's safe default


@dataclass(frozen=True, slots=True)
class HttpServer:
    """A Streamable HTTP server; each header's value is read from its environment variable."""

    url: str
    headers_env: Mapping[str, str] = field(default_factory=dict)  # header -> variable name


@dataclass(frozen=True, slots=True)
class ServerConfig:
    name: str
    transport: StdioServer | HttpServer
    timeout_s: float = DEFAULT_TIMEOUT_S
    max_result_bytes: int = DEFAULT_MAX_RESULT_BYTES


def config_path(environ: Mapping[str, str]) -> Path:
    return Path(environ.get(CONFIG_VARIABLE) or DEFAULT_PATH)


def load_config(path: Path) -> list[ServerConfig] | None:
    """The servers of the file at ``path``; None when there is no such file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingInvalid(f"{path}: cannot read the MCP server list: {exc}") from None
    return parse_config(text, str(path))


def parse_config(text: str, where: str = DEFAULT_PATH) -> list[ServerConfig]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SettingInvalid(f"{where}: not valid TOML: {exc}") from None
    unknown = sorted(set(data) - {"servers"})
    if unknown:
        raise SettingInvalid(f"{where}: unknown key {unknown[0]!r} (expected [servers.NAME])")
    servers = data.get("servers", {})
    if not isinstance(servers, dict):
        raise SettingInvalid(f"{where}: `servers` must be a table of [servers.NAME] tables")
    return [_server(where, name, table) for name, table in servers.items()]


def _server(where: str, name: str, table: Any) -> ServerConfig:
    place = f"{where}: [servers.{name}]"
    if not SERVER_NAME.match(name):
        raise SettingInvalid(f"{place}: a server name is 1-64 of A-Z a-z 0-9 _ -")
    if not isinstance(table, dict):
        raise SettingInvalid(f"{place} must be a table")
    unknown = sorted(set(table) - KEYS)
    if unknown:
        known = ", ".join(sorted(KEYS))
        raise SettingInvalid(f"{place}: unknown key {unknown[0]!r} (keys: {known})")
    if ("command" in table) == ("url" in table):
        raise SettingInvalid(f"{place}: needs either `command` (stdio) or `url` (HTTP), not both")
    transport: StdioServer | HttpServer
    if "command" in table:
        if "headers_env" in table:
            raise SettingInvalid(f"{place}: `headers_env` is for `url` servers")
        command = table["command"]
        if not isinstance(command, str) or not command.strip():
            raise SettingInvalid(f"{place}: `command` must be a non-empty string")
        args = table.get("args", [])
        if not isinstance(args, list) or not all(isinstance(arg, str) for arg in args):
            raise SettingInvalid(f"{place}: `args` must be a list of strings")
        env = _string_table(place, "env", table.get("env", {}), ENV_NAME, "variable name")
        transport = StdioServer(command, tuple(args), env)
    else:
        for key in ("args", "env"):
            if key in table:
                raise SettingInvalid(f"{place}: `{key}` is for `command` servers")
        url = table["url"]
        if not isinstance(url, str) or not re.match(r"^https?://[^/\s]+", url):
            raise SettingInvalid(f"{place}: `url` must be an http:// or https:// URL")
        headers = _string_table(place, "headers_env", table.get("headers_env", {}), HEADER_NAME,
                                "header name")
        for header, variable in headers.items():
            if not ENV_NAME.match(variable):
                raise SettingInvalid(
                    f"{place}: headers_env.{header} must name an environment variable, "
                    f"got {variable!r}"
                )
        transport = HttpServer(url, headers)
    timeout = table.get("timeout_s", DEFAULT_TIMEOUT_S)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
        raise SettingInvalid(f"{place}: `timeout_s` must be a positive number of seconds")
    limit = table.get("max_result_bytes", DEFAULT_MAX_RESULT_BYTES)
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise SettingInvalid(f"{place}: `max_result_bytes` must be a positive whole number")
    return ServerConfig(name, transport, float(timeout), limit)


def _string_table(
    place: str, key: str, value: Any, names: re.Pattern[str], what: str
) -> dict[str, str]:
    if not isinstance(value, dict):
        raise SettingInvalid(f"{place}: `{key}` must be a table of strings")
    for name, item in value.items():
        if not names.match(name):
            raise SettingInvalid(f"{place}: {key}: {name!r} is not a valid {what}")
        if not isinstance(item, str):
            raise SettingInvalid(f"{place}: {key}.{name} must be a string")
    return dict(value)

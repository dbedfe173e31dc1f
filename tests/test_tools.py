from __future__ import annotations

import json
import re
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest

from engine.documents.graph import validate
from engine.errors import PluginError
from engine.nodes.registry import NodeRegistry
from engine.nodes.types import CheckContext
from nodes import builtin_node_types
from nodes.tools import Tool, ToolError, ToolRegistry
from nodes.tools.calculator import evaluate
from nodes.tools.http_request import MAX_RESPONSE_BYTES, HttpRequest
from server.plugins import installed_registry
from tests.support.engine import builtin_registry
from tests.support.tools import error_of, result_of, tool_workflow

# -- the tool node and its registry -------------------------------------------------------------


def test_unknown_tool_is_a_validation_error(registry: NodeRegistry, tmp_path: Path) -> None:
    issues = validate(tool_workflow("nope", {}), registry, CheckContext(workspace=tmp_path))
    assert [(i.code, i.node, i.path) for i in issues] == [
        ("invalid_params", "t", "/nodes/1/params/tool")
    ]
    assert "unknown tool 'nope'" in issues[0].message
    assert "calculator" in issues[0].message


async def test_args_are_validated_naming_the_field(registry: NodeRegistry, tmp_path: Path) -> None:
    error = await error_of(registry, "calculator", {"expression": 42}, tmp_path)
    assert (
        error == "invalid args for tool 'calculator' at args/expression: 42 is not of type 'string'"
    )
    error = await error_of(registry, "calculator", {}, tmp_path)
    assert "'expression' is a required property" in error


class Echo(Tool):
    name = "echo"
    args_schema: ClassVar[dict[str, Any]] = {"type": "object"}

    async def call(self, args: dict[str, Any], *, idempotency_key: str) -> Any:
        return {"args": args, "key": idempotency_key}


async def test_tools_come_from_the_registry_given(tmp_path: Path) -> None:
    registry = NodeRegistry(builtin_node_types(ToolRegistry([Echo()])))
    result = await result_of(registry, "echo", {"x": 1}, tmp_path)
    assert result == {"args": {"x": 1}, "key": "r:t:1"}  # the node's idempotency key
    issues = validate(tool_workflow("calculator", {}), registry, CheckContext())
    assert "unknown tool 'calculator' (tools: echo)" in issues[0].message
    assert "echo" not in builtin_registry()["tool"].tools  # type: ignore[attr-defined]


def test_tool_registry_rejects_bad_tools() -> None:
    class BadSchema(Tool):
        name = "bad"
        args_schema: ClassVar[dict[str, Any]] = {"type": "objekt"}

    class NoName(Tool):
        pass

    tools = ToolRegistry([Echo()])
    with pytest.raises(PluginError, match="invalid args schema"):
        tools.register(BadSchema())
    with pytest.raises(PluginError, match="needs a `name`"):
        tools.register(NoName())
    with pytest.raises(PluginError, match="registered twice"):
        tools.register(Echo())
    with pytest.raises(PluginError, match="not a Tool"):
        tools.register(Echo)  # type: ignore[arg-type]


def test_entry_point_tools_reach_the_default_registry(tmp_path: Path) -> None:
    package = tmp_path / "shout_tools"
    package.mkdir()
    (package / "__init__.py").write_text(
        textwrap.dedent("""
        from nodes.tools import Tool

        class Shout(Tool):
            name = "shout"

            async def call(self, args, *, idempotency_key):
                return args["text"].upper()
    """)
    )
    dist = tmp_path / "shout_tools-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: shout-tools\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[nodeloom.tools]\nshout = shout_tools:Shout\n")
    sys.path.insert(0, str(tmp_path))
    try:
        assert "shout" in installed_registry()["tool"].tools  # type: ignore[attr-defined]
        assert "shout" not in builtin_registry()["tool"].tools  # type: ignore[attr-defined]
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("shout_tools", None)


# -- calculator ---------------------------------------------------------------------------------


async def test_calculator(registry: NodeRegistry, tmp_path: Path) -> None:
    result = await result_of(registry, "calculator", {"expression": "2 + 3 * (4 - 1)"}, tmp_path)
    assert result == 11
    assert evaluate("7 // 2 + 7 % 2 - -1") == 5
    assert evaluate("2 ** 10 / 4") == 256.0
    assert evaluate("-2 ** 2") == -4
    assert evaluate("sqrt(16) + abs(-3) + max(1, 5, 2) - min(4, 2)") == 10.0
    assert evaluate("round(pi, 2)") == 3.14
    assert evaluate("2 ** -1") == 0.5


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("__import__('os')", "only calls of abs"),
        ("__import__('os').system('true')", "only calls of"),
        ("x + 1", "unknown name 'x'"),
        ("(1).real", "Attribute is not allowed"),
        ("'a' * 3", "only numbers are allowed"),
        ("[1, 2]", "List is not allowed"),
        ("lambda: 1", "Lambda is not allowed"),
        ("1 if 1 else 2", "IfExp is not allowed"),
        ("round(1.5, ndigits=1)", "plain arguments"),
        ("9**9**9", "exponent too large"),
        ("2**100000", "exponent too large"),
        ("(10**3000) * (10**3000)", "too large"),
        ("2.0 ** 5000", "cannot calculate"),
        ("1 / 0", "cannot calculate '1 / 0': division by zero"),
        ("sqrt(-1)", "cannot calculate"),
        ("(-8) ** (1 / 3)", "not a real number"),
        ("1 +", "not an arithmetic expression"),
        ("1" + "+1" * 600, "longer than 1000 characters"),
    ],
)
def test_calculator_refuses(expression: str, message: str) -> None:
    started = time.perf_counter()
    with pytest.raises(ToolError, match=re.escape(message)):
        evaluate(expression)
    assert time.perf_counter() - started < 1


async def test_calculator_node_fails_on_code(registry: NodeRegistry, tmp_path: Path) -> None:
    error = await error_of(registry, "calculator", {"expression": "__import__('os')"}, tmp_path)
    assert "only calls of" in error
    error = await error_of(registry, "calculator", {"expression": "9**9**9"}, tmp_path)
    assert "exponent too large" in error


# -- regex_extract ------------------------------------------------------------------------------


async def test_regex_extract(registry: NodeRegistry, tmp_path: Path) -> None:
    text = "Order 17 shipped; order 23 pending"
    first = {"pattern": r"order (\d+)", "text": text, "group": 1, "flags": ["IGNORECASE"]}
    assert await result_of(registry, "regex_extract", first, tmp_path) == "17"
    every = {"pattern": r"(?P<n>\d+)", "text": text, "group": "n", "all": True}
    assert await result_of(registry, "regex_extract", every, tmp_path) == ["17", "23"]
    none = {"pattern": "x{3}", "text": text}
    assert await result_of(registry, "regex_extract", none, tmp_path) is None


async def test_regex_extract_bad_input(registry: NodeRegistry, tmp_path: Path) -> None:
    error = await error_of(registry, "regex_extract", {"pattern": "(", "text": "a"}, tmp_path)
    assert error.startswith("invalid pattern '(': missing ), unterminated subpattern")
    error = await error_of(
        registry, "regex_extract", {"pattern": "a", "text": "a", "group": 2}, tmp_path
    )
    assert error == "pattern has 0 group(s), no group 2"
    error = await error_of(
        registry, "regex_extract", {"pattern": "a", "text": "a" * 100_001}, tmp_path
    )
    assert error.startswith("invalid args for tool 'regex_extract' at args/text: ")
    assert error.endswith("is too long")


# -- json_path ----------------------------------------------------------------------------------


async def test_json_path(registry: NodeRegistry, tmp_path: Path) -> None:
    value = {"items": [{"name": "a", "n": 1}, {"name": "b", "n": 5}]}
    args = {"path": "$.items[*].name", "value": value}
    assert await result_of(registry, "json_path", args, tmp_path) == ["a", "b"]
    args = {"path": "$.items[?@.n > 2].name", "value": value, "first": True}
    assert await result_of(registry, "json_path", args, tmp_path) == "b"
    args = {"path": "$.x", "value": json.dumps({"x": [1]})}  # JSON text is parsed
    assert await result_of(registry, "json_path", args, tmp_path) == [[1]]
    args = {"path": "$.missing", "value": value, "first": True}
    assert await result_of(registry, "json_path", args, tmp_path) is None


async def test_json_path_bad_input(registry: NodeRegistry, tmp_path: Path) -> None:
    error = await error_of(registry, "json_path", {"path": "$.[[", "value": {}}, tmp_path)
    assert error.startswith("invalid JSONPath '$.[[': ")
    error = await error_of(registry, "json_path", {"path": "$", "value": "not json"}, tmp_path)
    assert error.startswith("value is a string but not JSON text")


# -- http_request -------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    requests: ClassVar[list[tuple[str, str, dict[str, str], bytes]]] = []

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._record(b"")
        if self.path.startswith("/big"):
            # No Content-Length: the client only finds out by reading.
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Connection", "close")
            self.end_headers()
            chunk = b"x" * 65536
            try:
                for _ in range(MAX_RESPONSE_BYTES // len(chunk) * 4):
                    self.wfile.write(chunk)
            except OSError:
                pass  # the client stopped reading
            self.close_connection = True
            return
        self._send(200, {"path": self.path, "ok": True})

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self._record(body)
        self._send(201, {"got": json.loads(body), "key": self.headers.get("Idempotency-Key")})

    def _record(self, body: bytes) -> None:
        _Handler.requests.append((self.command, self.path, dict(self.headers), body))

    def _send(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def http_server() -> Iterator[str]:
    """A real HTTP server on a free loopback port; yields its ``host:port``."""
    _Handler.requests.clear()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


async def test_http_request_refuses_hosts_not_on_the_allow_list(
    registry: NodeRegistry, tmp_path: Path, http_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NODELOOM_HTTP_ALLOW_HOSTS", raising=False)
    args = {"url": f"http://{http_server}/x"}
    error = await error_of(registry, "http_request", args, tmp_path)
    assert error == (
        "host '127.0.0.1' is not on the allow-list NODELOOM_HTTP_ALLOW_HOSTS (allowed: none)"
    )
    monkeypatch.setenv("NODELOOM_HTTP_ALLOW_HOSTS", "example.org, 127.0.0.1:1")
    error = await error_of(registry, "http_request", args, tmp_path)
    assert "(allowed: 127.0.0.1:1, example.org)" in error
    assert _Handler.requests == []  # no connection was made


async def test_http_request_to_an_allowed_host(
    registry: NodeRegistry, tmp_path: Path, http_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NODELOOM_HTTP_ALLOW_HOSTS", "127.0.0.1")
    args = {"url": f"http://{http_server}/hello", "params": {"q": "bees"}}
    result = await result_of(registry, "http_request", args, tmp_path)
    assert result["status"] == 200
    assert result["json"] == {"path": "/hello?q=bees", "ok": True}
    assert result["headers"]["content-type"] == "application/json"
    post = {
        "method": "POST",
        "url": f"http://{http_server}/items",
        "json": {"a": 1},
        "headers": {"Authorization": "Bearer secret"},
    }
    result = await result_of(registry, "http_request", post, tmp_path)
    assert result["status"] == 201
    assert result["json"] == {"got": {"a": 1}, "key": "r:t:1"}
    assert _Handler.requests[-1][2]["Authorization"] == "Bearer secret"


async def test_http_request_cuts_off_a_big_response(
    registry: NodeRegistry, tmp_path: Path, http_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NODELOOM_HTTP_ALLOW_HOSTS", f"{http_server}")
    error = await error_of(registry, "http_request", {"url": f"http://{http_server}/big"}, tmp_path)
    assert error == (
        f"GET http://{http_server}/big: response exceeds {MAX_RESPONSE_BYTES} bytes; "
        "reading stopped"
    )


async def test_http_request_errors_keep_secrets_out() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    def huge(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"Content-Length": str(MAX_RESPONSE_BYTES + 1)})

    args = {"url": "https://api.example.org/v1?token=secret"}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NODELOOM_HTTP_ALLOW_HOSTS", "api.example.org")
        tools = ToolRegistry([HttpRequest(httpx.MockTransport(refuse))])
        with pytest.raises(ToolError) as failed:
            await tools.call("http_request", args, idempotency_key="k")
        assert failed.value.detail == "GET https://api.example.org/v1 failed: ConnectError"
        assert failed.value.retryable
        tools = ToolRegistry([HttpRequest(httpx.MockTransport(huge))])
        with pytest.raises(ToolError, match="exceeds"):
            await tools.call("http_request", args, idempotency_key="k")
        both = {**args, "json": {}, "body": "", "headers": {"Authorization": "Bearer secret"}}
        with pytest.raises(ToolError) as failed:
            await tools.call("http_request", both, idempotency_key="k")
        assert failed.value.detail == "give either `json` or `body`, not both"
        with pytest.raises(ToolError) as failed:
            await tools.call("http_request", {"url": "ftp://x/?token=secret"}, idempotency_key="k")
        assert failed.value.detail == "url must be http:// or https:// with a host"

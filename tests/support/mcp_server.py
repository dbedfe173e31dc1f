"""A small real MCP server, made with the SDK's low-level server, for the tests of MCP tools:
``python tests/support/mcp_server.py`` (or ``-m tests.support.mcp_server``) over stdio,
``… --http PORT`` over Streamable HTTP at ``http://127.0.0.1:PORT/mcp``.

Tools: `add` (structured ``{"sum": …}``), `echo` (text), `pid` (this process's id, to see a
restart), `fail` (``isError``), `big` (``n`` bytes of text), `slow` (sleeps ``seconds``), `env`
(an environment variable's value, or null), `key` (the idempotency key the call carried),
`pair` (two text blocks and an image), `header` (an HTTP request header's value) and `broken`
(an input schema that is not JSON Schema).

With ``MCP_TEST_STARTS`` set (a file's path), each start over stdio adds its process id to
that file: how many times a command started the server.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import anyio
import mcp_types as types
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server

IDEMPOTENCY_KEY = "io.nodeloom/idempotency-key"


def _object(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


TOOLS = [
    types.Tool(
        name="add",
        description="Adds two numbers.\nGives {sum}.",
        input_schema=_object({"a": {"type": "number"}, "b": {"type": "number"}}, ["a", "b"]),
    ),
    types.Tool(
        name="echo",
        description="Gives back the text.",
        input_schema=_object({"text": {"type": "string"}}, ["text"]),
    ),
    types.Tool(name="pid", description="This server's process id.", input_schema=_object({}, [])),
    types.Tool(name="fail", description="Always fails.", input_schema=_object({}, [])),
    types.Tool(
        name="big",
        description="A text of n bytes.",
        input_schema=_object({"n": {"type": "integer", "minimum": 0}}, ["n"]),
    ),
    types.Tool(
        name="slow",
        description="Answers after some seconds.",
        input_schema=_object({"seconds": {"type": "number", "minimum": 0}}, ["seconds"]),
    ),
    types.Tool(
        name="env",
        description="The value of an environment variable.",
        input_schema=_object({"name": {"type": "string"}}, ["name"]),
    ),
    types.Tool(name="key", description="The call's idempotency key.", input_schema=_object({}, [])),
    types.Tool(name="pair", description="Two texts and an image.", input_schema=_object({}, [])),
    types.Tool(
        name="header",
        description="The value of a header of the HTTP request.",
        input_schema=_object({"name": {"type": "string"}}, ["name"]),
    ),
    types.Tool(
        name="broken",
        description="Its input schema is not a JSON Schema.",
        input_schema={"type": "object", "properties": {"x": {"type": "integer", "minimum": "0"}}},
    ),
]


def _text(text: str, *, error: bool = False) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(text=text)], is_error=error)


async def list_tools(
    ctx: Any, params: types.PaginatedRequestParams | None
) -> types.ListToolsResult:
    return types.ListToolsResult(tools=TOOLS)


async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
    args = params.arguments or {}
    match params.name:
        case "add":
            total = args["a"] + args["b"]
            return types.CallToolResult(
                content=[types.TextContent(text=str(total))], structured_content={"sum": total}
            )
        case "echo":
            return _text(args["text"])
        case "pid":
            return types.CallToolResult(content=[], structured_content={"pid": os.getpid()})
        case "fail":
            return _text("the disk is full", error=True)
        case "big":
            return _text("x" * args["n"])
        case "slow":
            await anyio.sleep(args["seconds"])
            return _text("done")
        case "env":
            return types.CallToolResult(
                content=[], structured_content={"value": os.environ.get(args["name"])}
            )
        case "key":
            meta = params.meta or {}
            return _text(str(meta.get(IDEMPOTENCY_KEY)))
        case "pair":
            return types.CallToolResult(
                content=[
                    types.TextContent(text="first"),
                    types.TextContent(text="second"),
                    types.ImageContent(data="iVBORw0KGgo=", mime_type="image/png"),
                ]
            )
        case "header":
            request = getattr(ctx, "request", None)
            value = request.headers.get(args["name"]) if request is not None else None
            return types.CallToolResult(content=[], structured_content={"value": value})
    return _text(f"no tool {params.name!r}", error=True)


server = Server("nodeloom-tests", version="1", on_list_tools=list_tools, on_call_tool=call_tool)


async def main() -> None:
    starts = os.environ.get("MCP_TEST_STARTS")
    if starts:
        with open(starts, "a") as file:  # noqa: ASYNC230, PTH123 - before serving anything
            file.write(f"{os.getpid()}\n")
    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())


if __name__ == "__main__":
    if sys.argv[1:2] == ["--http"]:
        import uvicorn

        app = server.streamable_http_app()
        uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
    else:
        anyio.run(main)

"""`json_path`: the values a JSONPath expression (RFC 9535) selects from a JSON value."""

from __future__ import annotations

import json
from typing import Any, ClassVar

import jsonpath

from nodes.tools.base import Tool, ToolError

MAX_PATH = 1000


class JsonPath(Tool):
    name = "json_path"
    description = (
        "Applies the JSONPath expression `path` (RFC 9535, e.g. `$.items[*].name`) to `value`: "
        "a list of every match, or with `first` the first match (null when none). A string "
        "`value` is parsed as JSON text first."
    )
    args_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {
            "path": {"type": "string", "minLength": 1, "maxLength": MAX_PATH},
            "value": {},
            "first": {"type": "boolean", "default": False},
        },
        "required": ["path", "value"],
        "additionalProperties": False,
    }

    async def call(self, args: dict[str, Any], *, idempotency_key: str) -> Any:
        try:
            query = jsonpath.compile(args["path"])
        except jsonpath.JSONPathError as exc:
            first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ToolError(f"invalid JSONPath {args['path']!r}: {first_line}") from None
        value = args["value"]
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError as exc:
                raise ToolError(f"value is a string but not JSON text: {exc}") from None
        try:
            matches = query.findall(value)
        except jsonpath.JSONPathError as exc:
            raise ToolError(f"JSONPath {args['path']!r} failed: {exc}") from None
        if args.get("first", False):
            return matches[0] if matches else None
        return matches

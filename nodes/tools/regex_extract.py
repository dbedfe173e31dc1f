"""`regex_extract`: the first match (or every match) of a regular expression in a text."""

from __future__ import annotations

import re
from typing import Any, ClassVar

from nodes.tools.base import Tool, ToolError

# `re` has no timeout; short patterns over bounded text keep pathological backtracking rarer.
MAX_PATTERN = 500
MAX_TEXT = 100_000
_FLAGS = {"IGNORECASE": re.IGNORECASE, "MULTILINE": re.MULTILINE, "DOTALL": re.DOTALL}


class RegexExtract(Tool):
    name = "regex_extract"
    description = (
        "Finds `pattern` (Python regular expression) in `text`: the first match, or with "
        "`all` a list of every match; `group` picks a group by number or name (0: whole match). "
        "No match gives null (or an empty list)."
    )
    args_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {
            "pattern": {"type": "string", "minLength": 1, "maxLength": MAX_PATTERN},
            "text": {"type": "string", "maxLength": MAX_TEXT},
            "group": {
                "anyOf": [{"type": "integer", "minimum": 0}, {"type": "string", "minLength": 1}],
                "default": 0,
            },
            "all": {"type": "boolean", "default": False},
            "flags": {"type": "array", "items": {"enum": list(_FLAGS)}, "uniqueItems": True},
        },
        "required": ["pattern", "text"],
        "additionalProperties": False,
    }

    async def call(self, args: dict[str, Any], *, idempotency_key: str) -> Any:
        flags = 0
        for flag in args.get("flags", ()):
            flags |= _FLAGS[flag]
        try:
            pattern = re.compile(args["pattern"], flags)
        except re.error as exc:
            raise ToolError(f"invalid pattern {args['pattern']!r}: {exc}") from None
        group: int | str = args.get("group", 0)
        if isinstance(group, int) and group > pattern.groups:
            raise ToolError(f"pattern has {pattern.groups} group(s), no group {group}")
        if isinstance(group, str) and group not in pattern.groupindex:
            raise ToolError(f"pattern has no group named {group!r}")
        text: str = args["text"]
        if args.get("all", False):
            return [match.group(group) for match in pattern.finditer(text)]
        match = pattern.search(text)
        return None if match is None else match.group(group)

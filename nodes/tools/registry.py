"""`ToolRegistry`: the tools a `tool` node may call: built in, from entry points, and those of
the operator's MCP servers (``mcp.<server>.<tool>``, registered by `nodes.tools.mcp`)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from importlib.metadata import entry_points
from typing import Any

import jsonschema

from engine.errors import PluginError
from nodes.tools.base import Tool, ToolError

ENTRY_POINT_GROUP = "nodeloom.tools"
NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")
# An MCP server's tool: the server's name from mcp.toml, then the tool's own name on it.
MCP_NAME_PATTERN = re.compile(r"^mcp\.[A-Za-z0-9_-]{1,64}\.[A-Za-z0-9_.-]{1,128}$")


class ToolRegistry:
    """Tools by name. Build one per engine (like `NodeRegistry`); tests build their own."""

    def __init__(self, tools: Iterable[Tool] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        self._validators: dict[str, jsonschema.protocols.Validator] = {}
        self._sources: dict[str, str] = {}
        # The names, sorted, as one list kept up to date in place: node types' params schemas
        # show it as examples, so a tool registered later (an MCP server's) shows there too.
        self.listed: list[str] = []
        for tool in tools:
            self.register(tool)

    @classmethod
    def builtin(cls) -> ToolRegistry:
        """The tools that ship with nodeloom (no `shell`: it is never on by default)."""
        from nodes.tools import builtin_tools  # noqa: PLC0415 - avoids an import cycle

        return cls(builtin_tools())

    @classmethod
    def default(cls) -> ToolRegistry:
        """Built-in tools plus those installed through the ``nodeloom.tools`` entry points."""
        registry = cls.builtin()
        registry.load_entry_points()
        return registry

    def register(self, tool: Tool, *, source: str = "builtin") -> Tool:
        """Add ``tool``; ``source`` says where it comes from (``builtin``, ``plugin`` or
        ``mcp:<server>``), as `describe` shows it."""
        if not isinstance(tool, Tool):
            raise PluginError(f"{tool!r} is not a Tool instance")
        name = getattr(tool, "name", None)
        if not isinstance(name, str) or not (
            NAME_PATTERN.match(name) or MCP_NAME_PATTERN.match(name)
        ):
            raise PluginError(
                f"{type(tool).__qualname__} needs a `name` matching {NAME_PATTERN.pattern}"
            )
        if name in self._tools and self._tools[name] is not tool:
            raise PluginError(f"tool {name!r} is registered twice")
        try:
            jsonschema.Draft202012Validator.check_schema(tool.args_schema)
        except jsonschema.SchemaError as exc:
            raise PluginError(f"tool {name!r} has an invalid args schema: {exc.message}") from None
        self._tools[name] = tool
        self._validators[name] = jsonschema.Draft202012Validator(tool.args_schema)
        self._sources[name] = source
        self.listed[:] = sorted(self._tools)
        return tool

    def unregister_source(self, source: str) -> None:
        """Remove every tool registered with ``source`` (an MCP server's, before its tools are
        registered again)."""
        for name in [name for name, given in self._sources.items() if given == source]:
            del self._tools[name], self._validators[name], self._sources[name]
        self.listed[:] = sorted(self._tools)

    def load_entry_points(self, group: str = ENTRY_POINT_GROUP) -> None:
        """Register tools from installed packages. An entry point names a `Tool` subclass or
        instance, or a list of them."""
        for entry in entry_points(group=group):
            try:
                loaded = entry.load()
            except Exception as exc:
                raise PluginError(
                    f"tool plugin {entry.name!r} ({entry.value}) failed to load: {exc}"
                ) from exc
            for item in loaded if isinstance(loaded, list | tuple) else [loaded]:
                self.register(item() if isinstance(item, type) else item, source="plugin")

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __iter__(self) -> Iterator[Tool]:
        return iter(self._tools.values())

    def __len__(self) -> int:
        return len(self._tools)

    @property
    def names(self) -> list[str]:
        return sorted(self._tools)

    def source(self, name: str) -> str:
        return self._sources[name]

    def describe(self) -> list[dict[str, Any]]:
        """Every tool as ``GET /api/tools`` lists it, sorted by name."""
        return [
            {
                "name": name,
                "description": self._tools[name].description,
                "schema": self._tools[name].args_schema,
                "source": self._sources[name],
            }
            for name in self.listed
        ]

    def check_args(self, name: str, args: Any) -> None:
        """`ToolError` naming the offending field when ``args`` do not fit the tool's schema."""
        error = jsonschema.exceptions.best_match(self._validators[name].iter_errors(args))
        if error is not None:
            where = "/".join(str(part) for part in error.absolute_path)
            at = f" at args/{where}" if where else ""
            raise ToolError(f"invalid args for tool {name!r}{at}: {error.message}")

    async def call(
        self, name: str, args: Any, *, idempotency_key: str, owner_id: str | None = None
    ) -> Any:
        """Validate ``args`` and call the tool for the run's owner (`ToolError` for an unknown
        tool or bad args)."""
        tool = self._tools.get(name)
        if tool is None:
            raise ToolError(f"unknown tool {name!r} (tools: {', '.join(self.names) or 'none'})")
        self.check_args(name, args)
        return await tool.call_for(args, idempotency_key=idempotency_key, owner_id=owner_id)

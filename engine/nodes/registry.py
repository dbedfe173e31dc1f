"""`NodeRegistry`: the node types an engine knows, built in and from entry points."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property
from importlib.metadata import entry_points
from typing import Any, Literal

import jsonschema
import msgspec

from engine.documents.digest import canonical
from engine.errors import PluginError
from engine.nodes.types import NodeType

__all__ = [
    "COMMON_PARAMS",
    "ENTRY_POINT_GROUP",
    "ID_PATTERN",
    "NodeRegistry",
    "NodeSettings",
    "ParamsErrors",
    "split_params",
]

ENTRY_POINT_GROUP = "nodeloom.nodes"
_PARAMS_CACHE_SIZE = 50_000
ParamsErrors = tuple[tuple[tuple[str | int, ...], str], ...]
ID_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")

COMMON_PARAMS: dict[str, Any] = {
    "timeout_s": {
        "type": "number",
        "exclusiveMinimum": 0,
        "description": "Seconds before one attempt of the node is abandoned.",
    },
    "retries": {
        "type": "integer",
        "minimum": 0,
        "maximum": 20,
        "default": 0,
        "description": "Further attempts after a failure.",
    },
    "retry_backoff_s": {
        "type": "number",
        "minimum": 0,
        "default": 1.0,
        "description": "Wait before the first retry; doubles with each further one.",
    },
    "cache": {
        "enum": ["auto", "never"],
        "default": "auto",
        "description": "`never` always executes the node, even when its cache key is unchanged.",
    },
}


@dataclass(slots=True, frozen=True)
class NodeSettings:
    """The common params: how the executor treats a node, never what it computes."""

    timeout_s: float | None = None
    retries: int = 0
    retry_backoff_s: float = 1.0
    cache: Literal["auto", "never"] = "auto"


def split_params(params: dict[str, Any]) -> tuple[dict[str, Any], NodeSettings]:
    """A node's own params, and its common ones."""
    own = {key: value for key, value in params.items() if key not in COMMON_PARAMS}
    common = {key: params[key] for key in COMMON_PARAMS if key in params}
    return own, NodeSettings(**common)


class NodeRegistry:
    """Node types by name. Build one per engine; tests build their own."""

    def __init__(self, node_types: Iterable[type[NodeType]] = ()) -> None:
        self._types: dict[str, type[NodeType]] = {}
        self._validators: dict[str, jsonschema.protocols.Validator] = {}
        self._params_errors: dict[tuple[str, bytes], ParamsErrors] = {}
        for node_type in node_types:
            self.register(node_type)

    def register(self, node_type: type[NodeType]) -> type[NodeType]:
        if not (isinstance(node_type, type) and issubclass(node_type, NodeType)):
            raise PluginError(f"{node_type!r} is not a NodeType subclass")
        name = getattr(node_type, "type", None)
        if not isinstance(name, str) or not ID_PATTERN.match(name):
            raise PluginError(
                f"{node_type.__qualname__} needs a `type` name matching {ID_PATTERN.pattern}"
            )
        if name in self._types and self._types[name] is not node_type:
            raise PluginError(f"node type {name!r} is registered twice")
        schema = node_type.params_schema
        try:
            jsonschema.Draft202012Validator.check_schema(schema)
        except jsonschema.SchemaError as exc:
            raise PluginError(
                f"node type {name!r} has an invalid params schema: {exc.message}"
            ) from None
        self._types[name] = node_type
        self._validators.pop(name, None)
        self._params_errors.clear()
        self.__dict__.pop("catalogue", None)
        self.__dict__.pop("signature", None)
        return node_type

    def load_entry_points(self, group: str = ENTRY_POINT_GROUP) -> None:
        """Register node types from installed packages. An entry point names a `NodeType`
        subclass or an iterable of them."""
        for entry in entry_points(group=group):
            try:
                loaded = entry.load()
            except Exception as exc:
                raise PluginError(
                    f"node plugin {entry.name!r} ({entry.value}) failed to load: {exc}"
                ) from exc
            for node_type in loaded if isinstance(loaded, list | tuple) else [loaded]:
                self.register(node_type)

    def get(self, name: str) -> type[NodeType] | None:
        return self._types.get(name)

    def __getitem__(self, name: str) -> type[NodeType]:
        return self._types[name]

    def __contains__(self, name: object) -> bool:
        return name in self._types

    def __iter__(self) -> Iterator[type[NodeType]]:
        return iter(self._types.values())

    def __len__(self) -> int:
        return len(self._types)

    def params_schema(self, name: str) -> dict[str, Any]:
        """The node type's params schema with the common params added."""
        schema = dict(self._types[name].params_schema)
        schema["properties"] = {**COMMON_PARAMS, **schema.get("properties", {})}
        return schema

    def params_errors(self, name: str, params: dict[str, Any]) -> ParamsErrors:
        """Each violation of the params schema as (path, message), sorted by path; remembered
        per distinct params, so revalidating a document (a rerun, a save) costs little."""
        key = (name, canonical(params))
        errors = self._params_errors.get(key)
        if errors is None:
            found = self.params_validator(name).iter_errors(params)
            errors = tuple(
                sorted(
                    ((tuple(e.absolute_path), e.message) for e in found),
                    key=lambda error: [str(part) for part in error[0]],
                )
            )
            if len(self._params_errors) >= _PARAMS_CACHE_SIZE:
                self._params_errors.clear()
            self._params_errors[key] = errors
        return errors

    def params_validator(self, name: str) -> jsonschema.protocols.Validator:
        validator = self._validators.get(name)
        if validator is None:
            validator = jsonschema.Draft202012Validator(self.params_schema(name))
            self._validators[name] = validator
        return validator

    @cached_property
    def signature(self) -> str:
        """A digest of the node types held and their versions: what a compiled plan depends
        on besides its document."""
        kinds = sorted(
            (name, node_type.version, f"{node_type.__module__}.{node_type.__qualname__}")
            for name, node_type in self._types.items()
        )
        return hashlib.sha256(canonical(kinds)).hexdigest()

    @cached_property
    def catalogue(self) -> list[dict[str, Any]]:
        """Every node type as the API and the canvas show it, sorted by type."""
        return [
            {
                "type": node_type.type,
                "title": node_type.title,
                "category": node_type.category,
                "description": node_type.description,
                "version": node_type.version,
                "inputs": msgspec.to_builtins(node_type.inputs),
                "outputs": msgspec.to_builtins(node_type.outputs),
                "dynamic_ports": node_type.dynamic_ports,
                "params_schema": self.params_schema(node_type.type),
            }
            for node_type in sorted(self._types.values(), key=lambda t: t.type)
        ]

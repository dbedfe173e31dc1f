"""`input`: a value given to the run by name, checked against a JSON Schema."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

import jsonschema

from engine.documents.digest import digest
from engine.documents.issues import Issue
from engine.nodes.types import CheckContext, NodeContext, NodeType, Port, json_schema_port_type


class InputNode(NodeType):
    type = "input"
    title = "Input"
    category = "io"
    description = "A value given when the run starts, by name, validated by its JSON Schema."
    role = "input"
    dynamic_ports = True
    reads_outside_world = True  # the run's value is part of the cache key
    params_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {
            "name": {"type": "string", "pattern": r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$"},
            "schema": {"type": "object", "default": {}},
            "default": {},
            "description": {"type": "string"},
        },
        "required": ["name"],
        "additionalProperties": False,
    }
    outputs = (Port("value"),)

    @classmethod
    def output_ports(cls, params: Mapping[str, Any]) -> tuple[Port, ...]:
        return (Port("value", json_schema_port_type(params.get("schema") or {})),)

    @classmethod
    def check(cls, params: Mapping[str, Any], context: CheckContext) -> Iterable[Issue]:
        schema = params.get("schema", {})
        try:
            jsonschema.Draft202012Validator.check_schema(schema)
        except jsonschema.SchemaError as exc:
            yield Issue(
                "invalid_params",
                f"`schema` is not a valid JSON Schema: {exc.message}",
                path="/schema",
            )
            return
        if "default" in params:
            for error in jsonschema.Draft202012Validator(schema).iter_errors(params["default"]):
                yield Issue(
                    "invalid_params",
                    f"`default` does not fit `schema`: {error.message}",
                    path="/default",
                )

    async def fingerprint(self, inputs: Mapping[str, Any], context: NodeContext) -> str | None:
        return digest(context.run_inputs.get(self.params["name"]))

    async def run(self, inputs: dict[str, Any], context: NodeContext) -> dict[str, Any]:
        return {"value": context.run_inputs[self.params["name"]]}

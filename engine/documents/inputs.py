"""Run inputs: given by name, defaulted, checked against each input node's JSON Schema."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import jsonschema

from engine.documents.plan import Plan
from engine.errors import InputsInvalid

__all__ = ["coerce", "input_schemas", "resolve_inputs"]

_BOOLEANS = {"true": True, "false": False, "1": True, "0": False, "yes": True, "no": False}


def input_schemas(plan: Plan) -> dict[str, dict[str, Any]]:
    """Each input's name and JSON Schema, in document order."""
    nodes = sorted(plan.by_role("input"), key=lambda node: node.index)
    return {node.params["name"]: node.params.get("schema", {}) for node in nodes}


def resolve_inputs(plan: Plan, given: Mapping[str, Any]) -> dict[str, Any]:
    """The run's input values (defaults filled in), or `InputsInvalid` naming every problem."""
    problems: list[str] = []
    known = {node.params["name"]: node for node in plan.by_role("input")}
    for name in given:
        if name not in known:
            names = ", ".join(sorted(known)) or "none"
            problems.append(f"unknown input {name!r} (this workflow's inputs: {names})")
    resolved: dict[str, Any] = {}
    for name, node in known.items():
        if name in given:
            value = given[name]
        elif "default" in node.params:
            value = node.params["default"]
        else:
            problems.append(f"input {name!r} is required (node {node.id})")
            continue
        schema = node.params.get("schema", {})
        error = jsonschema.exceptions.best_match(
            jsonschema.Draft202012Validator(schema).iter_errors(value)
        )
        if error is not None:
            problems.append(f"input {name!r} (node {node.id}): {error.message}")
            continue
        resolved[name] = value
    if problems:
        raise InputsInvalid("; ".join(problems))
    return resolved


def coerce(text: str, schema: Mapping[str, Any]) -> Any:
    """Turn command-line text into the value the schema asks for (``-i n=3`` gives ``3``).

    Values that cannot be coerced are returned as given, for `resolve_inputs` to report.
    """
    kind = schema.get("type")
    try:
        if kind == "string":
            return text
        if kind == "integer":
            return int(text)
        if kind == "number":
            number = float(text)
            return int(number) if number.is_integer() and "." not in text else number
        if kind == "boolean":
            return _BOOLEANS.get(text.strip().lower(), text)
        return json.loads(text)
    except ValueError:
        return text

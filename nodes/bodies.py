"""`subgraph`, `map` and `loop`: run a body of the document (``graph``, one of its `subgraphs`)
once, once per item of a list, or once per iteration until a condition holds (SPEC §12). The
engine expands and settles the body's nodes; these say what each run of it gets and what the
node answers."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

import jinja2

from engine.documents.issues import Issue
from engine.errors import NodeFailure
from engine.nodes.body import Body, BodyNode, Outcome
from engine.nodes.types import CheckContext, Port
from nodes.jinja import compile_expression, syntax_issue

_GRAPH = {"type": "string", "pattern": r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$"}
# A saved workflow as the body, at a version (without one: the current one when a run starts).
_SAVED = {
    "workflow": {"type": "string", "minLength": 1},
    "version": {"type": "integer", "minimum": 1},
}


class SubgraphNode(BodyNode):
    type = "subgraph"
    title = "Subgraph"
    category = "flow"
    description = "Runs a body of this document once: its inputs and outputs are the body's."
    params_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {"graph": _GRAPH, **_SAVED},
        "additionalProperties": False,
    }

    def instances(self, inputs: dict[str, Any], body: Body) -> list[dict[str, Any]]:
        return [inputs]

    def answer(self, inputs: dict[str, Any], outcomes: list[Outcome], body: Body) -> dict[str, Any]:
        (outcome,) = outcomes
        if outcome.outputs is None:
            raise NodeFailure(outcome.error or "the body failed", retryable=False)
        return outcome.outputs


class MapNode(BodyNode):
    type = "map"
    title = "Map"
    category = "flow"
    description = (
        "Runs a body once per item of `items` (the item goes to the body input `over`, the "
        "other inputs to every item); one array per body output, in item order."
    )
    path_format = "[{}]"
    params_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {
            "graph": _GRAPH,
            **_SAVED,
            "over": {"type": "string", "minLength": 1},
            "concurrency": {"type": "integer", "minimum": 1, "maximum": 256, "default": 4},
            "on_item_error": {"enum": ["fail", "skip", "null"], "default": "fail"},
        },
        "additionalProperties": False,
    }

    @classmethod
    def _over(cls, params: Mapping[str, Any], body: Body) -> str | None:
        over = params.get("over")
        if isinstance(over, str):
            return over
        return body.inputs[0].name if body.inputs else None

    @classmethod
    def body_ports(
        cls, params: Mapping[str, Any], body: Body
    ) -> tuple[tuple[Port, ...], tuple[Port, ...]]:
        over = cls._over(params, body)
        inputs = (Port("items", "array"), *(p for p in body.inputs if p.name != over))
        outputs = (*(Port(p.name, "array") for p in body.outputs), Port("errors", "array"))
        return inputs, outputs

    @classmethod
    def check_body(cls, params: Mapping[str, Any], body: Body) -> Iterable[Issue]:
        names = [port.name for port in body.inputs]
        over = cls._over(params, body)
        if over is None:
            yield Issue(
                "invalid_params",
                f"body {cls.body_name(params)!r} has no input to map over",
                path="",
            )
        elif over not in names:
            known = ", ".join(names)
            yield Issue(
                "invalid_params",
                f"over: body {cls.body_name(params)!r} has no input {over!r} (its inputs: {known})",
                path="/over",
            )
        for clash in {"items"} & {*names} - {over}:
            yield Issue("invalid_params", f"a body input may not be named {clash!r}", path="")
        if "errors" in {port.name for port in body.outputs}:
            yield Issue("invalid_params", "a mapped body output may not be named 'errors'", path="")

    def __init__(self, params: Mapping[str, Any]) -> None:
        super().__init__(params)
        self.over: str | None = params.get("over")
        self.on_item_error: str = params.get("on_item_error", "fail")

    def concurrency(self) -> int:
        return int(self.params.get("concurrency", 4))

    def instances(self, inputs: dict[str, Any], body: Body) -> list[dict[str, Any]]:
        items = inputs.get("items")
        if not isinstance(items, list):
            raise NodeFailure(f"items: expected an array, got {_json_type(items)}", retryable=False)
        given = {name: value for name, value in inputs.items() if name != "items"}
        over = self.over or body.inputs[0].name
        return [{**given, over: item} for item in items]

    def stops_on_failure(self) -> bool:
        return self.on_item_error == "fail"

    def answer(self, inputs: dict[str, Any], outcomes: list[Outcome], body: Body) -> dict[str, Any]:
        names = [port.name for port in body.outputs]
        arrays: dict[str, list[Any]] = {name: [] for name in names}
        errors = []
        for outcome in outcomes:
            if outcome.outputs is None:
                error = outcome.error or "failed"
                if self.on_item_error == "fail":
                    raise NodeFailure(f"item {outcome.index}: {error}", retryable=False)
                errors.append({"index": outcome.index, "error": error})
                if self.on_item_error == "skip":
                    continue
            for name in names:
                arrays[name].append((outcome.outputs or {}).get(name))
        return {**arrays, "errors": errors}


class LoopNode(BodyNode):
    type = "loop"
    title = "Loop"
    category = "flow"
    description = (
        "Runs a body again and again, up to `max_iterations` times or until `until` (a "
        "sandboxed Jinja2 expression over the body's outputs) holds; a body input named like a "
        "body output gets the last iteration's value."
    )
    path_format = "#{}"
    sequential = True
    params_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {
            "graph": _GRAPH,
            **_SAVED,
            "max_iterations": {"type": "integer", "minimum": 1, "maximum": 1000},
            "until": {"type": "string", "minLength": 1},
        },
        "required": ["max_iterations"],
        "additionalProperties": False,
    }

    @classmethod
    def body_ports(
        cls, params: Mapping[str, Any], body: Body
    ) -> tuple[tuple[Port, ...], tuple[Port, ...]]:
        return body.inputs, (*body.outputs, Port("iterations", "integer"))

    @classmethod
    def check(cls, params: Mapping[str, Any], context: CheckContext) -> Iterable[Issue]:
        yield from super().check(params, context)
        source = params.get("until")
        if isinstance(source, str) and (
            issue := syntax_issue(source, expression=True, path="/until")
        ):
            yield issue

    @classmethod
    def check_body(cls, params: Mapping[str, Any], body: Body) -> Iterable[Issue]:
        if "iterations" in {port.name for port in body.outputs}:
            yield Issue(
                "invalid_params", "a looped body output may not be named 'iterations'", path=""
            )

    def __init__(self, params: Mapping[str, Any]) -> None:
        super().__init__(params)
        self.max_iterations: int = params["max_iterations"]
        until = params.get("until")
        self.until = compile_expression(until) if until else None

    def instance_path(self, node_id: str, index: int) -> str:
        return f"{node_id}#{index + 1}/"  # iterations count from 1

    def instances(self, inputs: dict[str, Any], body: Body) -> list[dict[str, Any]]:
        return [inputs]

    def following(self, inputs: dict[str, Any], last: Outcome) -> dict[str, Any] | None:
        if last.outputs is None or last.index + 1 >= self.max_iterations:
            return None
        if self.until is not None and self._done(last):
            return None
        carried = {name: value for name, value in last.outputs.items() if name in inputs}
        return {**inputs, **carried}

    def _done(self, last: Outcome) -> bool:
        try:
            return bool(self.until(**(last.outputs or {})))  # type: ignore[misc]
        except jinja2.TemplateError as exc:
            raise NodeFailure(
                f"until: expression error after iteration {last.index + 1}: {exc}",
                retryable=False,
            ) from None

    def answer(self, inputs: dict[str, Any], outcomes: list[Outcome], body: Body) -> dict[str, Any]:
        last = outcomes[-1]
        if last.outputs is None:
            raise NodeFailure(f"iteration {last.index + 1}: {last.error}", retryable=False)
        return {**last.outputs, "iterations": len(outcomes)}


def _json_type(value: Any) -> str:
    names = {dict: "object", str: "string", bool: "boolean", int: "integer", float: "number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)

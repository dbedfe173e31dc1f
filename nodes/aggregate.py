"""`aggregate`: combines the values on its `many` port into one result."""

from __future__ import annotations

import copy
import json
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar

from engine.documents.issues import Issue
from engine.errors import NodeFailure
from engine.models import DEFAULT_MODEL, GenerationRequest
from engine.nodes.types import CheckContext, NodeContext, NodeType, Port, PortType
from nodes.jinja import compile_template, syntax_issue
from nodes.model_calls import generate, model_issue
from nodes.template import render

RESULT_TYPES: dict[str, PortType] = {
    "concat": "string",
    "list": "array",
    "vote": "any",
    "json_merge": "object",
    "template": "string",
    "synthesis": "string",
}
DEFAULT_INSTRUCTION = "Combine these answers into one answer that keeps what they agree on."
SYNTHESIS_MAX_TOKENS = 256


class AggregateNode(NodeType):
    type = "aggregate"
    title = "Aggregate"
    category = "flow"
    description = (
        "Combines several values: `concat` joins text, `list` collects, `vote` picks the "
        "majority answer, `json_merge` deep-merges objects, `template` renders `items`, "
        "`synthesis` has a model merge them under an `instruction`."
    )
    dynamic_ports = True
    params_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {
            "mode": {"enum": list(RESULT_TYPES), "default": "concat"},
            "separator": {"type": "string", "default": "\n"},
            "template": {"type": "string", "format": "jinja2-template"},
            "model": {
                "type": "string",
                "minLength": 1,
                "default": DEFAULT_MODEL,
                "description": "`synthesis`: the model that merges the items.",
            },
            "instruction": {
                "type": "string",
                "minLength": 1,
                "default": DEFAULT_INSTRUCTION,
                "description": "`synthesis`: what the model is to make of the items.",
            },
            "temperature": {"type": "number", "minimum": 0, "maximum": 2, "default": 0},
            "seed": {"type": "integer", "minimum": 0, "maximum": 2**32 - 1},
            "max_tokens": {
                "type": "integer",
                "minimum": 1,
                "maximum": 1_000_000,
                "default": SYNTHESIS_MAX_TOKENS,
            },
            "stop": {
                "anyOf": [
                    {"type": "string", "minLength": 1},
                    {"type": "array", "items": {"type": "string", "minLength": 1}},
                ],
            },
        },
        "additionalProperties": False,
        "if": {"properties": {"mode": {"const": "template"}}, "required": ["mode"]},
        "then": {"required": ["template"]},
    }
    inputs = (Port("items", many=True),)
    outputs = (Port("result"),)

    @classmethod
    def output_ports(cls, params: Mapping[str, Any]) -> tuple[Port, ...]:
        return (Port("result", RESULT_TYPES.get(params.get("mode", "concat"), "any")),)

    @classmethod
    def check(cls, params: Mapping[str, Any], context: CheckContext) -> Iterable[Issue]:
        source = params.get("template")
        if isinstance(source, str) and (issue := syntax_issue(source, path="/template")):
            yield issue
        if params.get("mode") == "synthesis" and (issue := model_issue(params, context)):
            yield issue

    async def run(self, inputs: dict[str, Any], context: NodeContext) -> dict[str, Any]:
        items: list[Any] = inputs["items"]
        mode = self.params.get("mode", "concat")
        if mode == "template":
            return {"result": render(compile_template(self.params["template"]), {"items": items})}
        if mode == "synthesis":
            return {"result": await self._synthesise(items, context)}
        combiners: dict[str, Callable[[list[Any]], Any]] = {
            "concat": self._concat,
            "list": list,
            "vote": vote,
            "json_merge": json_merge,
        }
        combine = combiners[mode]
        return {"result": combine(items)}

    async def _synthesise(self, items: list[Any], context: NodeContext) -> str:
        if not items:
            raise NodeFailure("nothing to synthesise: every item was skipped", retryable=False)
        listed = "\n".join(
            f"{number}. {_as_text(item).strip()}" for number, item in enumerate(items, 1)
        )
        stop = self.params.get("stop", ())
        instruction = self.params.get("instruction", DEFAULT_INSTRUCTION)
        request = GenerationRequest(
            prompt=f"{instruction}\n\n{listed}\nCombined:",
            temperature=self.params.get("temperature", 0),
            max_tokens=self.params.get("max_tokens", SYNTHESIS_MAX_TOKENS),
            seed=self.params.get("seed"),
            stop=(stop,) if isinstance(stop, str) else tuple(stop),
        )
        completion = await generate(context, self.params.get("model", DEFAULT_MODEL), request)
        return completion.text.strip()

    def _concat(self, items: list[Any]) -> str:
        separator: str = self.params.get("separator", "\n")
        return separator.join(_as_text(item) for item in items)


def _as_text(item: Any) -> str:
    return item if isinstance(item, str) else json.dumps(item, ensure_ascii=False)


def normalise(answer: Any) -> str:
    """Lower-cased text without surrounding whitespace, quotes or end punctuation."""
    text = answer if isinstance(answer, str) else json.dumps(answer, sort_keys=True)
    return re.sub(r"\s+", " ", text).strip().strip("\"'`").rstrip(".!?;:").strip().lower()


def vote(items: list[Any]) -> Any:
    """The majority answer after normalising; ties go to the answer seen first."""
    if not items:
        raise NodeFailure("nothing to vote on: every item was skipped or empty", retryable=False)
    counts = Counter(normalise(item) for item in items)
    best = max(counts.values())
    return next(item for item in items if counts[normalise(item)] == best)


def json_merge(items: list[Any]) -> dict[str, Any]:
    """Deep-merge objects in order (later keys win; nested objects merge). JSON text is parsed."""
    merged: dict[str, Any] = {}
    for index, item in enumerate(items):
        value = item
        if isinstance(item, str):
            try:
                value = json.loads(item)
            except json.JSONDecodeError:
                raise NodeFailure(
                    f"item {index} is not JSON: {item[:80]!r}", retryable=False
                ) from None
        if not isinstance(value, dict):
            raise NodeFailure(
                f"item {index} is {type(value).__name__}, json_merge needs objects",
                retryable=False,
            )
        _merge_into(merged, value)
    return merged


def _merge_into(target: dict[str, Any], source: Mapping[str, Any]) -> None:
    for key, value in source.items():
        if isinstance(value, Mapping) and isinstance(target.get(key), dict):
            _merge_into(target[key], value)
        else:
            target[key] = copy.deepcopy(value)

"""`condition`: routes its value to the `true` or `false` port; the other branch is skipped."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

import jinja2

from engine.documents.issues import Issue
from engine.errors import NodeFailure
from engine.nodes.types import CheckContext, NodeContext, NodeType, Port
from nodes.jinja import compile_expression, syntax_issue


class ConditionNode(NodeType):
    type = "condition"
    title = "Condition"
    category = "flow"
    description = (
        "Evaluates a sandboxed Jinja2 expression over `value`; the value goes out on `true` or "
        "`false`, and whatever only the other port feeds is skipped."
    )
    params_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {"expression": {"type": "string", "minLength": 1}},
        "required": ["expression"],
        "additionalProperties": False,
    }
    inputs = (Port("value"),)
    outputs = (Port("true"), Port("false"))

    @classmethod
    def check(cls, params: Mapping[str, Any], context: CheckContext) -> Iterable[Issue]:
        source = params.get("expression")
        if isinstance(source, str) and (
            issue := syntax_issue(source, expression=True, path="/expression")
        ):
            yield issue

    def __init__(self, params: Mapping[str, Any]) -> None:
        super().__init__(params)
        self.expression = compile_expression(params["expression"])

    async def run(self, inputs: dict[str, Any], context: NodeContext) -> dict[str, Any]:
        value = inputs["value"]
        try:
            taken = bool(self.expression(value=value))
        except jinja2.TemplateError as exc:
            raise NodeFailure(f"expression error: {exc}", retryable=False) from None
        return {"true" if taken else "false": value}

"""`template`: renders a sandboxed Jinja2 template; each variable it reads is an input port."""

from __future__ import annotations

import json
import traceback
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

import jinja2

from engine.documents.issues import Issue
from engine.errors import NodeFailure
from engine.nodes.types import CheckContext, NodeContext, NodeType, Port
from nodes.jinja import compile_template, syntax_issue, template_variables


class TemplateNode(NodeType):
    type = "template"
    title = "Template"
    category = "text"
    description = (
        "Renders a Jinja2 template (sandboxed). Every variable the template reads becomes a "
        "required input port; `format: json` also parses the result into the `json` output."
    )
    dynamic_ports = True
    params_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {
            "template": {"type": "string", "format": "jinja2-template"},
            "format": {"enum": ["text", "json"], "default": "text"},
        },
        "required": ["template"],
        "additionalProperties": False,
    }
    outputs = (Port("text", "string"),)

    @classmethod
    def input_ports(cls, params: Mapping[str, Any]) -> tuple[Port, ...]:
        """One port per variable; a template that does not parse raises its syntax error."""
        return tuple(Port(name) for name in template_variables(params["template"]))

    @classmethod
    def output_ports(cls, params: Mapping[str, Any]) -> tuple[Port, ...]:
        if params.get("format") == "json":
            return (Port("text", "string"), Port("json"))
        return cls.outputs

    @classmethod
    def check(cls, params: Mapping[str, Any], context: CheckContext) -> Iterable[Issue]:
        source = params.get("template")
        if isinstance(source, str) and (issue := syntax_issue(source, path="/template")):
            yield issue

    def __init__(self, params: Mapping[str, Any]) -> None:
        super().__init__(params)
        self.template = compile_template(params["template"])

    async def run(self, inputs: dict[str, Any], context: NodeContext) -> dict[str, Any]:
        text = render(self.template, inputs)
        if self.params.get("format") != "json":
            return {"text": text}
        try:
            return {"text": text, "json": json.loads(text)}
        except json.JSONDecodeError as exc:
            raise NodeFailure(f"rendered text is not JSON: {exc}", retryable=False) from None


def render(template: jinja2.Template, variables: Mapping[str, Any]) -> str:
    """Render, turning template errors into a non-retryable `NodeFailure` with the line."""
    try:
        return template.render(variables)
    except jinja2.TemplateError as exc:
        line = getattr(exc, "lineno", None) or _template_line(exc)
        where = f" (line {line})" if line else ""
        raise NodeFailure(f"template error{where}: {exc}", retryable=False) from None


def _template_line(exc: BaseException) -> int | None:
    """The template line a render error came from (Jinja2 maps it into the traceback)."""
    lines = [
        frame.lineno
        for frame in traceback.extract_tb(exc.__traceback__)
        if frame.filename == "<template>"
    ]
    return lines[-1] if lines else None

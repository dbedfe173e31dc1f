"""`human_input`: waits for a person's answer (SPEC §16). Its run waits, holding nothing, until
the answer comes through `POST /api/runs/{id}/nodes/{node}/answer` (or the inbox), checked
against `schema`; the answer is the node's committed result, which a rerun reuses like any
other. With `choices`, the answer is one of them and the port of that name carries `context`
on (the others' branches are skipped), as a condition routes. A `timeout_s` ends the wait with
a failure or with `default` (`on_timeout`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

import jinja2
import jsonschema

from engine.documents.issues import Issue
from engine.errors import AnswerInvalid, NodeFailure, NodeWaits
from engine.nodes.types import CheckContext, NodeContext, NodeType, Port
from nodes.jinja import compile_template, syntax_issue

CHOICE = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
DEFAULT_PROMPT = "Your answer?"
DEFAULT_SCHEMA: dict[str, Any] = {"type": "string"}


class HumanInputNode(NodeType):
    type = "human_input"
    title = "Human input"
    category = "flow"
    description = (
        "Waits for a person's answer: `prompt` (a template over `context`) is shown in the "
        "inbox with a form made from `schema`; the run waits until it is answered. With "
        "`choices`, the port of the chosen one carries `context` on and the others' branches "
        "are skipped."
    )
    dynamic_ports = True  # a port per choice
    params_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {
            "prompt": {"type": "string", "default": DEFAULT_PROMPT, "format": "jinja2-template"},
            "schema": {
                "type": "object",
                "default": DEFAULT_SCHEMA,
                "description": "The JSON Schema the answer must fit (a string by default).",
            },
            "choices": {
                "type": "array",
                "items": {"type": "string", "pattern": CHOICE},
                "minItems": 1,
                "uniqueItems": True,
                "description": "The answer is one of these; the port named after it carries "
                "`context` on.",
            },
            "on_timeout": {
                "enum": ["fail", "default"],
                "default": "fail",
                "description": "When `timeout_s` passes with no answer: fail, or take `default`.",
            },
            "default": {"description": "The answer when the wait times out (on_timeout: default)."},
        },
        "additionalProperties": False,
    }
    inputs = (Port("context", required=False, default=None, description="Shown to the person."),)
    outputs = (Port("answer"),)
    recordable = True  # a person's answer: a replay takes it, as a model's

    @classmethod
    def output_ports(cls, params: Mapping[str, Any]) -> tuple[Port, ...]:
        return (Port("answer"), *(Port(choice) for choice in params.get("choices", [])))

    @classmethod
    def check(cls, params: Mapping[str, Any], context: CheckContext) -> Iterable[Issue]:
        prompt = params.get("prompt")
        if isinstance(prompt, str) and (issue := syntax_issue(prompt, path="/prompt")):
            yield issue
        schema = params.get("schema")
        if isinstance(schema, dict):
            try:
                jsonschema.Draft202012Validator.check_schema(schema)
            except jsonschema.SchemaError as exc:
                yield Issue("invalid_params", f"not a JSON Schema: {exc.message}", path="/schema")
                return
        if "answer" in params.get("choices", []):
            yield Issue("invalid_params", "a choice cannot be named 'answer'", path="/choices")
        if params.get("on_timeout") == "default":
            if "default" not in params:
                yield Issue(
                    "invalid_params", "on_timeout: default needs a `default`", path="/default"
                )
            elif (problem := answer_problem(params, params["default"])) is not None:
                yield Issue("invalid_params", f"the default {problem}", path="/default")

    def __init__(self, params: Mapping[str, Any]) -> None:
        super().__init__(params)
        self.prompt = compile_template(params.get("prompt", DEFAULT_PROMPT))

    async def run(self, inputs: dict[str, Any], context: NodeContext) -> dict[str, Any]:
        try:
            prompt = self.prompt.render(context=inputs.get("context"))
        except jinja2.TemplateError as exc:
            raise NodeFailure(f"prompt error: {exc}", retryable=False) from None
        question: dict[str, Any] = {"prompt": prompt, "schema": answer_schema(self.params)}
        if "choices" in self.params:
            question["choices"] = list(self.params["choices"])
        question["on_timeout"] = self.params.get("on_timeout", "fail")
        raise NodeWaits(question)  # the node's `timeout_s` bounds the wait (see the executor)


    @classmethod
    def answered(
        cls, params: Mapping[str, Any], answer: Any, inputs: Mapping[str, Any]
    ) -> dict[str, Any]:
        if (problem := answer_problem(params, answer)) is not None:
            raise AnswerInvalid(f"the answer {problem}")
        return answered_output(params, answer, inputs.get("context"))


def answer_schema(params: Mapping[str, Any]) -> dict[str, Any]:
    """The schema an answer must fit: one of the choices, or the ``schema`` param."""
    if "choices" in params:
        return {"enum": list(params["choices"])}
    return dict(params.get("schema", DEFAULT_SCHEMA))


def answer_problem(params: Mapping[str, Any], answer: Any) -> str | None:
    """Why ``answer`` does not fit, in words (None: it fits)."""
    error = jsonschema.exceptions.best_match(
        jsonschema.Draft202012Validator(answer_schema(params)).iter_errors(answer)
    )
    if error is None:
        return None
    where = "/".join(str(part) for part in error.absolute_path)
    return f"does not fit{f' at {where}' if where else ''}: {error.message}"


def answered_output(params: Mapping[str, Any], answer: Any, context: Any) -> dict[str, Any]:
    """The node's outputs for ``answer``: `answer`, and with choices the chosen port."""
    if "choices" in params:
        return {"answer": answer, answer: context}
    return {"answer": answer}

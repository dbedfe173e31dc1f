"""`llm`: one generation by a registered model, streamed token by token; with `response_schema`,
JSON valid against that schema. With `messages` connected it answers that conversation (cut to
the model's context) instead of `prompt`."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

import jsonschema
import msgspec

from engine.documents.issues import Issue
from engine.errors import NodeFailure
from engine.models import DEFAULT_MODEL, GenerationRequest
from engine.models.conversation import Message, MessagesInvalid, decode_messages
from engine.nodes.types import CheckContext, NodeContext, NodeType, Port, json_schema_port_type
from nodes.model_calls import FALLBACKS_SCHEMA, generate, model_issues

DEFAULT_TEMPERATURE = 0.8
DEFAULT_TOP_P = 0.95
DEFAULT_MAX_TOKENS = 256


class LLMNode(NodeType):
    type = "llm"
    title = "LLM"
    category = "llm"
    dynamic_ports = True  # `json` only with a response_schema; lists with `batch`
    recordable = True
    description = (
        "Sends `prompt` (and the optional `system` text) to a model from models/models.toml and "
        "streams its answer to `text`; with `messages` (a conversation: `{role, content}` "
        "objects) connected it answers that instead, the oldest turns dropped to fit the "
        "model's context. `fallbacks` are models tried in turn when `model` fails. "
        "With `response_schema` the answer is JSON valid against "
        "that schema, also parsed to `json`. `usage` counts prompt and completion tokens. "
        "With `batch`, `prompt` is a list: one answer per item, `text` and `json` are lists."
    )
    params_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {
            "model": {
                "type": "string",
                "minLength": 1,
                "default": DEFAULT_MODEL,
                "description": "A model name from models/models.toml.",
            },
            "fallbacks": FALLBACKS_SCHEMA,
            "temperature": {
                "type": "number",
                "minimum": 0,
                "maximum": 2,
                "default": DEFAULT_TEMPERATURE,
                "description": "0 always picks the likeliest token: the same text every time.",
            },
            "top_p": {
                "type": "number",
                "exclusiveMinimum": 0,
                "maximum": 1,
                "default": DEFAULT_TOP_P,
            },
            "max_tokens": {
                "type": "integer",
                "minimum": 1,
                "maximum": 1_000_000,
                "default": DEFAULT_MAX_TOKENS,
            },
            "seed": {
                "type": "integer",
                "minimum": 0,
                "maximum": 2**32 - 1,
                "description": "Makes sampling with a temperature above 0 repeatable.",
            },
            "stop": {
                "anyOf": [
                    {"type": "string", "minLength": 1},
                    {"type": "array", "items": {"type": "string", "minLength": 1}},
                ],
                "description": "Text that ends the answer (not included in it).",
            },
            "response_schema": {
                "type": "object",
                "description": "A JSON Schema: the answer is JSON valid against it.",
            },
            "batch": {
                "type": "boolean",
                "default": False,
                "description": "`prompt` is a list of prompts, answered one by one, in order.",
            },
        },
        "additionalProperties": False,
    }
    inputs = (
        Port("prompt", "string", alternative="messages"),
        Port("system", "string", required=False, description="Instructions before the prompt."),
        Port(
            "messages",
            "array",
            required=False,
            description="A conversation ({role, content} objects), answered instead of prompt.",
        ),
    )
    outputs = (Port("text", "string"), Port("usage", "object"))

    @classmethod
    def input_ports(cls, params: Mapping[str, Any]) -> tuple[Port, ...]:
        if params.get("batch") is not True:
            return cls.inputs
        return (Port("prompt", "array", description="The prompts (strings)."), cls.inputs[1])

    @classmethod
    def output_ports(cls, params: Mapping[str, Any]) -> tuple[Port, ...]:
        batch = params.get("batch") is True
        text = Port("text", "array") if batch else cls.outputs[0]
        ports = (text, cls.outputs[1])
        schema = params.get("response_schema")
        if not isinstance(schema, dict):
            return ports
        return (*ports, Port("json", "array" if batch else json_schema_port_type(schema)))

    @classmethod
    def check(cls, params: Mapping[str, Any], context: CheckContext) -> Iterable[Issue]:
        yield from model_issues(params, context)
        schema = params.get("response_schema")
        if isinstance(schema, dict):
            try:
                jsonschema.validators.validator_for(schema).check_schema(schema)
            except jsonschema.SchemaError as exc:
                where = "/".join(str(part) for part in exc.absolute_path)
                yield Issue(
                    "invalid_params",
                    f"response_schema is not a valid JSON Schema: {exc.message}",
                    path="/response_schema" + (f"/{where}" if where else ""),
                )

    def __init__(self, params: Mapping[str, Any]) -> None:
        super().__init__(params)
        stop = params.get("stop", ())
        self.model: str = params.get("model", DEFAULT_MODEL)
        self.fallbacks: list[str] = list(params.get("fallbacks", []))
        self.schema: dict[str, Any] | None = params.get("response_schema")
        self.request = GenerationRequest(
            prompt="",
            temperature=params.get("temperature", DEFAULT_TEMPERATURE),
            top_p=params.get("top_p", DEFAULT_TOP_P),
            max_tokens=params.get("max_tokens", DEFAULT_MAX_TOKENS),
            seed=params.get("seed"),
            stop=(stop,) if isinstance(stop, str) else tuple(stop),
            response_schema=self.schema,
        )

    async def run(self, inputs: dict[str, Any], context: NodeContext) -> dict[str, Any]:
        system = inputs.get("system") or None
        if not self.params.get("batch"):
            if inputs.get("messages") is not None:
                return await self._converse(inputs["messages"], system, context)
            if inputs.get("prompt") is None:
                raise NodeFailure("connect `prompt` or `messages`", retryable=False)
            return await self._answer(inputs["prompt"], system, context)
        prompts = inputs["prompt"]
        if not all(isinstance(prompt, str) for prompt in prompts):
            raise NodeFailure("with batch, `prompt` must be a list of strings", retryable=False)
        answers = []
        for index, prompt in enumerate(prompts):
            if index:
                context.emit_token("\n")
            answers.append(await self._answer(prompt, system, context))
        output: dict[str, Any] = {
            "text": [answer["text"] for answer in answers],
            "usage": context.usage or {"prompt_tokens": 0, "completion_tokens": 0},
        }
        if self.schema is not None:
            output["json"] = [answer["json"] for answer in answers]
        return output

    async def _converse(
        self, value: Any, system: str | None, context: NodeContext
    ) -> dict[str, Any]:
        try:
            messages = decode_messages(value)
        except MessagesInvalid as exc:
            raise NodeFailure(exc.detail, retryable=False) from None
        if system:
            messages = (Message("system", system), *messages)
        if not messages:
            raise NodeFailure("`messages` is empty", retryable=False)
        request = msgspec.structs.replace(self.request, messages=messages)
        return await self._complete(request, context)

    async def _answer(
        self, prompt: str, system: str | None, context: NodeContext
    ) -> dict[str, Any]:
        request = msgspec.structs.replace(self.request, prompt=prompt, system=system)
        return await self._complete(request, context)

    async def _complete(self, request: GenerationRequest, context: NodeContext) -> dict[str, Any]:
        completion = await generate(context, self.model, request, fallbacks=self.fallbacks)
        output: dict[str, Any] = {"text": completion.text, "usage": dict(context.usage or {})}
        if self.schema is not None:
            output["json"] = self._parse(completion.text, completion.finish_reason)
        return output

    def _parse(self, text: str, finish_reason: str) -> Any:
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            cut = (
                f" (the answer was cut off at max_tokens={self.request.max_tokens})"
                if finish_reason == "length"
                else ""
            )
            raise NodeFailure(f"the answer is not valid JSON{cut}: {exc}") from None
        assert self.schema is not None
        error = jsonschema.exceptions.best_match(
            jsonschema.validators.validator_for(self.schema)(self.schema).iter_errors(value)
        )
        if error is not None:
            where = "/".join(str(part) for part in error.absolute_path) or "the top level"
            raise NodeFailure(
                f"the answer does not match response_schema at {where}: {error.message}"
            )
        return value

"""`agent`: a model works on `task` in at most `max_steps` steps. Each step is one JSON object
the model writes under a grammar made from the allowed tools' args schemas — call a tool, or
answer — so even a small local model cannot produce a malformed step. Tool results (and tool
errors) go back into the prompt; the last allowed step may only answer. With `messages` (a
conversation) connected, the task is its last user message and the turns before it come first in
the prompt, the oldest dropped to fit the model's context.

Like `tool`, the node type is bound to a `ToolRegistry` by `agent_node_type(tools)`."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from engine.documents.issues import Issue
from engine.errors import NodeFailure
from engine.models import DEFAULT_MODEL, GenerationRequest, ModelError
from engine.models.conversation import Message, MessagesInvalid, decode_messages, line
from engine.nodes.types import CheckContext, NodeContext, NodeType, Port
from engine.storage.agents import DEFAULT_MAX_STEPS, DEFAULT_STEP_MAX_TOKENS, DEFAULT_SYSTEM_PROMPT
from nodes.model_calls import FALLBACKS_SCHEMA, generate, model_issues
from nodes.tools import Tool, ToolError, ToolRegistry

STEP_MAX_TOKENS = DEFAULT_STEP_MAX_TOKENS  # per step, by default
RESULT_CHARS = 2000  # of a tool result shown to the model


def _params_schema(names: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "agent": {
                "type": "string",
                "minLength": 1,
                "description": "A saved agent's id: its settings fill the params not set here.",
            },
            "model": {"type": "string", "minLength": 1, "default": DEFAULT_MODEL},
            "fallbacks": FALLBACKS_SCHEMA,
            "system_prompt": {
                "type": "string",
                "default": DEFAULT_SYSTEM_PROMPT,
                "description": "Instructions before the task (worked examples help small models).",
            },
            "tools": {
                "type": "array",
                "items": {"type": "string", "minLength": 1, "examples": names},
                "uniqueItems": True,
                "default": [],
                "description": "The tools the agent may call: " + (", ".join(names) or "none"),
            },
            "max_steps": {
                "type": "integer",
                "minimum": 1,
                "maximum": 50,
                "default": DEFAULT_MAX_STEPS,
            },
            "temperature": {"type": "number", "minimum": 0, "maximum": 2, "default": 0},
            "seed": {"type": "integer", "minimum": 0, "maximum": 2**32 - 1},
            "max_tokens": {
                "type": "integer",
                "minimum": 16,
                "maximum": 100_000,
                "default": STEP_MAX_TOKENS,
                "description": "The most tokens one step may take.",
            },
        },
        "additionalProperties": False,
    }


class AgentNode(NodeType):
    type = "agent"
    title = "Agent"
    category = "llm"
    recordable = True  # a model and tools: a replay takes the recorded steps (SPEC §17)
    description = (
        "A model works on `task` step by step: each step calls one of the allowed `tools` or "
        "answers. `answer` is the final answer, `steps` the trace of every call and result. "
        "With `messages` (a conversation) connected, the task is its last user message, the "
        "turns before it the context."
    )
    inputs = (
        Port("task", "string", alternative="messages"),
        Port(
            "messages",
            "array",
            required=False,
            description="A conversation ({role, content} objects): its last user message is the "
            "task, the turns before it the context.",
        ),
    )
    outputs = (Port("answer", "string"), Port("steps", "array"), Port("usage", "object"))
    params_schema: ClassVar[dict[str, Any]] = _params_schema([])
    tools: ClassVar[ToolRegistry]  # set by `agent_node_type`

    @classmethod
    def check(cls, params: Mapping[str, Any], context: CheckContext) -> Iterable[Issue]:
        # A saved agent's model is checked when a run copies the agent into its snapshot.
        if "model" in params or "agent" not in params:
            yield from model_issues(params, context)
        for index, name in enumerate(params.get("tools", []) if context.tools_checked else []):
            if isinstance(name, str) and name not in cls.tools:
                known = ", ".join(cls.tools.names) or "none"
                yield Issue(
                    "invalid_params",
                    f"unknown tool {name!r} (tools: {known})",
                    path=f"/tools/{index}",
                )

    def __init__(self, params: Mapping[str, Any]) -> None:
        super().__init__(params)
        self.model: str = params.get("model", DEFAULT_MODEL)
        self.fallbacks: list[str] = list(params.get("fallbacks", []))
        self.max_steps: int = params.get("max_steps", DEFAULT_MAX_STEPS)
        self.allowed: list[str] = list(params.get("tools", []))
        self.request = GenerationRequest(
            prompt="",
            temperature=params.get("temperature", 0),
            max_tokens=params.get("max_tokens", STEP_MAX_TOKENS),
            seed=params.get("seed"),
        )
        self.schemas = (step_schema(self.tools, self.allowed), step_schema(self.tools, []))
        self.preamble = _preamble(
            params.get("system_prompt", DEFAULT_SYSTEM_PROMPT), self.tools, self.allowed
        )

    async def run(self, inputs: dict[str, Any], context: NodeContext) -> dict[str, Any]:
        task, history = await self._task(inputs, context)
        earlier = ["Conversation so far:", *map(line, history), ""] if history else []
        transcript = ["\n".join([self.preamble, *earlier]) + f"Task: {task}"]
        steps: list[dict[str, Any]] = []
        for number in range(1, self.max_steps + 1):
            last = number == self.max_steps
            transcript.append(f"Step {number}:")
            request = GenerationRequest(
                prompt="\n".join(transcript) + " ",
                temperature=self.request.temperature,
                max_tokens=self.request.max_tokens,
                seed=self.request.seed,
                response_schema=self.schemas[1 if last else 0],
            )
            if number > 1:
                context.emit_token("\n")
            completion = await generate(context, self.model, request, fallbacks=self.fallbacks)
            decision = _decode_step(completion.text, number, completion.finish_reason)
            transcript[-1] += " " + json.dumps(decision, ensure_ascii=False)
            if "answer" in decision:
                steps.append({"step": number, "answer": decision["answer"]})
                return {"answer": decision["answer"], "steps": steps, "usage": context.usage}
            record, shown = await self._call(decision["tool"], decision.get("args"), context)
            steps.append({"step": number, **record})
            transcript.append(shown)
        raise AssertionError("the last step may only answer")  # pragma: no cover

    async def _task(
        self, inputs: dict[str, Any], context: NodeContext
    ) -> tuple[str, tuple[Message, ...]]:
        """The task, and the conversation before it (cut to fit the model's context)."""
        if inputs.get("messages") is None:
            if inputs.get("task") is None:
                raise NodeFailure("connect `task` or `messages`", retryable=False)
            return inputs["task"], ()
        try:
            messages = decode_messages(inputs["messages"])
        except MessagesInvalid as exc:
            raise NodeFailure(exc.detail, retryable=False) from None
        users = [i for i, m in enumerate(messages) if m.role == "user"]
        if inputs.get("task") is not None:
            task, history = inputs["task"], messages
        elif users:
            task, history = messages[users[-1]].content, messages[: users[-1]]
        else:
            raise NodeFailure("`messages` has no user message", retryable=False)
        if not history or context.models is None:
            return task, history
        # The preamble and the task stay; room is kept for two steps.
        framed = (Message("system", self.preamble), *history, Message("user", task))
        try:
            fitted = await context.models.fit(self.model, framed, 2 * self.request.max_tokens)
        except ModelError:
            return task, history  # the step's own generation says what is wrong
        return task, fitted[1:-1]

    async def _call(self, name: str, args: Any, context: NodeContext) -> tuple[dict[str, Any], str]:
        """The step's trace entry and the line the model sees next."""
        record: dict[str, Any] = {"tool": name, "args": args}
        if name not in self.allowed:  # a provider without grammars may stray
            record["error"] = f"tool {name!r} is not one of this agent's tools"
            return record, f"Error: {record['error']}"
        try:
            result = await self.tools.call(
                name,
                args,
                idempotency_key=f"{context.idempotency_key}:{name}",
                owner_id=context.owner_id,
            )
        except ToolError as exc:
            record["error"] = exc.detail
            return record, f"Error: {exc.detail}"
        record["result"] = result
        text = result if isinstance(result, str) else json.dumps(result, ensure_ascii=False)
        if len(text) > RESULT_CHARS:
            text = text[:RESULT_CHARS] + " …"
        return record, f"Result: {text}"


def step_schema(tools: ToolRegistry, allowed: list[str]) -> dict[str, Any]:
    """The JSON Schema of one step: a call of one of ``allowed`` with its args, or an answer."""
    answer = {
        "type": "object",
        "properties": {"answer": {"type": "string", "minLength": 1}},
        "required": ["answer"],
        "additionalProperties": False,
    }
    calls = []
    for name in allowed:
        tool = _known(tools, name)
        calls.append(
            {
                "type": "object",
                "properties": {"tool": {"const": name}, "args": tool.args_schema},
                "required": ["tool", "args"],
                "additionalProperties": False,
            }
        )
    return {"anyOf": [*calls, answer]} if calls else answer


def _known(tools: ToolRegistry, name: str) -> Tool:
    """The tool ``name`` (`check` refused unknown ones where the run was validated; a worker
    lacking one fails the node)."""
    tool = tools.get(name)
    if tool is None:
        known = ", ".join(tools.names) or "none"
        raise NodeFailure(f"unknown tool {name!r} (tools here: {known})", retryable=False)
    return tool


def _preamble(system_prompt: str, tools: ToolRegistry, allowed: list[str]) -> str:
    lines = [system_prompt.strip(), ""] if system_prompt.strip() else []
    if allowed:
        lines.append("Tools:")
        for name in allowed:
            tool = _known(tools, name)
            properties = tool.args_schema.get("properties", {})
            args = ", ".join(f'"{key}": …' for key in properties)
            lines.append(f"- {name}: {tool.description} Args: {{{args}}}")
        lines.append(
            'Each step is one JSON object: {"tool": NAME, "args": {…}} calls a tool, '
            '{"answer": TEXT} gives the final answer.'
        )
    else:
        lines.append('Give the final answer as one JSON object: {"answer": TEXT}.')
    return "\n".join(lines) + "\n"


def _decode_step(text: str, number: int, finish_reason: str) -> dict[str, Any]:
    try:
        decision = json.loads(text)
    except json.JSONDecodeError as exc:
        cut = " (cut off at max_tokens)" if finish_reason == "length" else ""
        raise NodeFailure(f"step {number} is not valid JSON{cut}: {exc}") from None
    if not isinstance(decision, dict) or not ("answer" in decision or "tool" in decision):
        raise NodeFailure(f"step {number} is neither a tool call nor an answer: {text[:200]}")
    return decision


def agent_node_type(tools: ToolRegistry) -> type[AgentNode]:
    """The `agent` node type whose agents may call the tools of ``tools``."""
    namespace = {
        "__module__": __name__,
        "tools": tools,
        "params_schema": _params_schema(tools.listed),  # kept up to date, as for `tool`
    }
    return type("AgentNode", (AgentNode,), namespace)

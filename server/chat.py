"""Chatting with a target (SPEC §13): the one way a conversation becomes a stored run, for the
OpenAI-compatible door (``/v1``) and for conversations (``/api/conversations``) alike.

Contract (kept stable)::

    run = await start_chat(engine, principal, target, messages, options, trigger="api")
    async for text in run.tokens():    # optional: the answering node's tokens, as they come
        ...
    answer = await run.result()        # ChatAnswer: text, usage, finish_reason, record
    run.close()                        # or `async with run:`; cancel() stops the run

- ``target``: ``model:<name>`` (a registry model), ``agent:<id>`` (a saved agent) or
  ``workflow:<id>`` (a saved workflow), of ``principal``. Unknown, or another user's: `NotFound`
  naming it (raised before anything is stored).
- ``messages``: `ChatMessageIn` (``{"role": "system" | "user" | "assistant", "content"}``), the
  whole conversation, oldest first. Empty, or without a user message: `ChatInvalid` (a 400).
  `ChatMessageIn.decode` makes them from JSON builtins, `ChatInvalid` naming the bad item.
- ``options``: `ChatOptions`; each field left None keeps the target's own setting. ``model:``
  takes them all; ``agent:`` takes ``temperature``, ``seed`` and ``max_tokens`` (per step);
  ``workflow:`` takes none (its nodes' params say). A ``max_tokens`` beyond the model's context:
  `ChatInvalid`.
- Exactly one run is started through the run service, recording ``trigger`` (``api``,
  ``conversation:<id>``, …): for ``model:`` a generated workflow (input ``messages`` → `llm` →
  output ``answer``), for ``agent:`` one `agent` node naming the saved agent with the
  conversation as its ``messages``, for ``workflow:`` the saved workflow with the conversation as
  its ``messages`` input (an ``array``) if it has one, else the last user message as its first
  ``string`` input; the answer is its first output.
- `ChatAnswer.usage`: ``prompt_tokens``, ``completion_tokens``, ``total_tokens``, ``model`` (the
  model that answered; the target's name when no model was called) and ``cost`` (0 without
  prices), summed over the run's nodes. A run that does not succeed: `ChatFailed` (its record
  attached).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import msgspec

from engine.documents.document import Workflow, from_builtins
from engine.documents.inputs import input_schemas
from engine.errors import NodeloomError, NotFound
from engine.execution.events import AnyEvent, NodeToken
from engine.models.conversation import ROLES, Message, MessagesInvalid, decode_messages
from engine.records import RunRecord
from engine.runs.launch import RunHandle
from engine.runs.usage import total_usage
from server.auth import Principal
from server.live import Subscription
from server.state import Engine

__all__ = [
    "ANSWER",
    "KINDS",
    "MESSAGES_SCHEMA",
    "ChatAnswer",
    "ChatFailed",
    "ChatInvalid",
    "ChatMessageIn",
    "ChatOptions",
    "ChatRun",
    "start_chat",
]

KINDS = ("model", "agent", "workflow")
ANSWER = "answer"  # the node and the output of the workflows made for model and agent targets
MESSAGES_SCHEMA: dict[str, Any] = {
    "type": "array",
    "items": {
        "type": "object",
        "properties": {"role": {"enum": list(ROLES)}, "content": {"type": "string"}},
        "required": ["role", "content"],
    },
}
_encoder = msgspec.json.Encoder()
MADE_WORKFLOWS = 256  # generated documents kept, by what they are made of
_made_workflows: dict[bytes, Workflow] = {}


class ChatMessageIn(Message, frozen=True, forbid_unknown_fields=True):
    """One message of a conversation: ``{"role": "system" | "user" | "assistant", "content"}``."""

    @staticmethod
    def decode(value: Any, where: str = "messages") -> list[Message]:
        """Messages from JSON builtins; `ChatInvalid` naming the offending item."""
        try:
            return list(decode_messages(value, where))
        except MessagesInvalid as exc:
            raise ChatInvalid(exc.detail) from None


class ChatOptions(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """How to answer; None keeps the target's own setting."""

    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    stop: tuple[str, ...] | None = None
    seed: int | None = None
    # A JSON Schema the answer is JSON valid against (``response_format`` ``json_schema``).
    response_schema: dict[str, Any] | None = None


class ChatInvalid(NodeloomError, ValueError):
    """The conversation or the options cannot be answered (a 400): nothing was stored."""


class ChatFailed(NodeloomError):
    """The run answering the conversation did not succeed."""

    def __init__(self, record: RunRecord) -> None:
        super().__init__(f"run {record.id} {record.status}: {record.error}")
        self.record = record


class ChatAnswer(msgspec.Struct, kw_only=True):
    text: str
    usage: dict[str, Any]
    # ``length`` when the answer took all of max_tokens, else ``stop``.
    finish_reason: str
    record: RunRecord


@dataclass(eq=False)
class ChatRun:
    """A started chat run (see the module docstring)."""

    handle: RunHandle
    target: str
    node: str  # whose tokens are the answer
    output: str  # the run output holding the answer
    max_tokens: int | None
    events: Subscription[AnyEvent]

    @property
    def run_id(self) -> str:
        return self.handle.id

    async def tokens(self) -> AsyncIterator[str]:
        """The answering node's text as it is generated, until the run ends (nothing more
        when it ended already, or its tokens were read)."""
        async for event in self.events.live():
            if isinstance(event, NodeToken) and event.node == self.node:
                yield event.text
        self.events.past = []

    async def result(self) -> ChatAnswer:
        """The answer once the run is over; `ChatFailed` unless it succeeded."""
        record = await self.handle.wait()
        if record.status != "succeeded":
            raise ChatFailed(record)
        value = record.outputs.get(self.output)
        text = value if isinstance(value, str) else _encoder.encode(value).decode()
        usage = total_usage(node.usage for node in record.nodes.values())
        if usage["model"] is None:
            usage["model"] = self.target
        node = record.nodes.get(self.node)
        answered = (node.usage or {}).get("completion_tokens", 0) if node else 0
        cut = self.max_tokens is not None and answered >= self.max_tokens
        return ChatAnswer(
            text=text, usage=usage, finish_reason="length" if cut else "stop", record=record
        )

    def cancel(self) -> None:
        self.handle.cancel()

    def close(self) -> None:
        self.events.close()

    async def __aenter__(self) -> ChatRun:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


async def start_chat(
    engine: Engine,
    principal: Principal,
    target: str,
    messages: Sequence[Message],
    options: ChatOptions,
    *,
    trigger: str,
) -> ChatRun:
    """Start the one run that answers ``messages`` with ``target`` (see the module docstring)."""
    kind, _, name = target.partition(":")
    if kind not in KINDS or not name:
        raise NotFound(f"unknown model {target!r}: use model:<name>, agent:<id> or workflow:<id>")
    conversation = [Message(m.role, m.content) for m in messages]
    if not conversation:
        raise ChatInvalid("messages is empty: give at least one user message")
    if not any(m.role == "user" for m in conversation):
        raise ChatInvalid("messages has no user message")
    owner_id = principal.owner_id
    workflow_id = version = None
    if kind == "model":
        _check_model(engine, name, options.max_tokens)
        workflow, inputs = _model_workflow(target, name, options), {"messages": conversation}
        node, output = ANSWER, ANSWER
    elif kind == "agent":
        saved = await engine.runs.agents.get(name, owner_id=owner_id)
        if engine.models is not None and saved.config.model in engine.models.names:
            _check_model(engine, saved.config.model, options.max_tokens)
        workflow, inputs = _agent_workflow(target, name, options), {"messages": conversation}
        node, output = ANSWER, ANSWER
    else:
        stored, workflow = await engine.current_workflow(name, owner_id=owner_id)
        workflow_id, version = stored.id, stored.version
        inputs, node, output = _workflow_door(engine, workflow, conversation)
    handle = await engine.runs.start(
        workflow,
        msgspec.to_builtins(inputs),
        workflow_id=workflow_id,
        workflow_version=version,
        owner_id=owner_id,
        trigger=trigger,
    )
    # Subscribed before anything else runs here: no token of the run is missed.
    events = engine.live.open(handle.id).subscribe()
    max_tokens = options.max_tokens if kind == "model" else None
    return ChatRun(handle, target, node, output, max_tokens, events)


def _check_model(engine: Engine, name: str, max_tokens: int | None) -> None:
    models = engine.models
    if models is None or name not in models.names:
        known = ", ".join(f"model:{n}" for n in sorted(models.names)) if models else "none"
        raise NotFound(f"unknown model 'model:{name}' (models: {known})")
    context = models.context_size(name)
    if max_tokens is not None and context is not None and max_tokens >= context:
        raise ChatInvalid(
            f"max_tokens {max_tokens} is more than model {name} can take: its context is "
            f"{context} tokens, the conversation included"
        )


def _model_workflow(target: str, name: str, options: ChatOptions) -> Workflow:
    params: dict[str, Any] = {"model": name, **msgspec.to_builtins(options)}
    if "stop" in params:
        params["stop"] = list(params["stop"])
    return _made(target, {"id": ANSWER, "type": "llm", "params": params}, "text")


def _agent_workflow(target: str, agent_id: str, options: ChatOptions) -> Workflow:
    taken = {"temperature", "seed", "max_tokens"}
    params = {
        "agent": agent_id,
        **{k: v for k, v in msgspec.to_builtins(options).items() if k in taken},
    }
    return _made(target, {"id": ANSWER, "type": "agent", "params": params}, "answer")


def _made(target: str, node: dict[str, Any], port: str) -> Workflow:
    """The workflow for ``node``, the same document object for the same node: the run service
    compiles a document object's plan once, so a chat's next turn starts without compiling."""
    key = _encoder.encode([target, node, port])
    workflow = _made_workflows.pop(key, None) or _conversation_workflow(target, node, port)
    _made_workflows[key] = workflow  # the most recent last
    while len(_made_workflows) > MADE_WORKFLOWS:
        del _made_workflows[next(iter(_made_workflows))]
    return workflow


def _conversation_workflow(target: str, node: dict[str, Any], port: str) -> Workflow:
    return from_builtins(
        {
            "schema_version": 1,
            "name": target,
            "nodes": [
                {
                    "id": "messages",
                    "type": "input",
                    "params": {"name": "messages", "schema": MESSAGES_SCHEMA},
                },
                node,
                {"id": "reply", "type": "output", "params": {"name": ANSWER}},
            ],
            "edges": [
                {"from": "messages.value", "to": f"{ANSWER}.messages"},
                {"from": f"{ANSWER}.{port}", "to": "reply.value"},
            ],
        }
    )


def _workflow_door(
    engine: Engine, workflow: Workflow, conversation: list[Message]
) -> tuple[dict[str, Any], str, str]:
    """The inputs a saved workflow takes the conversation by, the node that answers and the
    output that holds the answer."""
    plan = engine.runs.plan(workflow)
    schemas = input_schemas(plan)
    outputs = sorted(plan.by_role("output"), key=lambda node: node.index)
    if not outputs:
        raise ChatInvalid(f"workflow {workflow.name!r} has no output node to answer with")
    sources = outputs[0].sources.get("value") or [("", "")]
    answer = (outputs[0].params["name"], sources[0][0])
    if schemas.get("messages", {}).get("type") == "array":
        return {"messages": conversation}, answer[1], answer[0]
    strings = [name for name, schema in schemas.items() if schema.get("type") == "string"]
    untyped = [name for name, schema in schemas.items() if "type" not in schema]
    if not (strings or untyped):
        raise ChatInvalid(
            f"workflow {workflow.name!r} has neither a `messages` array input nor a string input"
        )
    last = next(m.content for m in reversed(conversation) if m.role == "user")
    return {(strings or untyped)[0]: last}, answer[1], answer[0]

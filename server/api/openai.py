"""The OpenAI-compatible front door: each saved workflow is the model ``workflow:<id>``.

The last user message feeds the workflow's first string input; its first output is the answer.
With ``stream: true`` the tokens of the node feeding that output arrive as chat-completion chunks
(ending ``data: [DONE]``). Errors have OpenAI's shape, ``{"error": {"message", "type", …}}``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import msgspec
from litestar import Request, Response, Router, get, post
from litestar.exceptions import HTTPException
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import JSONBody
from litestar.response import Stream
from litestar.status_codes import HTTP_200_OK

from engine.documents.document import Workflow
from engine.documents.inputs import input_schemas
from engine.errors import NodeloomError, NotFound, WorkflowInvalid
from engine.execution.events import NodeToken, RunFinished
from engine.records import RunRecord
from engine.runs.launch import RunHandle
from server.api.deps import EngineDep, PrincipalDep
from server.api.events import SSE_HEADERS
from server.live import Subscription
from server.state import Engine

PREFIX = "workflow:"
_encoder = msgspec.json.Encoder()


class ContentPart(msgspec.Struct):
    type: str
    text: str | None = None


class ChatMessage(msgspec.Struct):
    role: str
    content: str | list[ContentPart] | None = None


class ChatRequest(msgspec.Struct):
    """The fields nodeloom uses; others OpenAI clients send are accepted and ignored."""

    model: str
    messages: list[ChatMessage]
    stream: bool = False


class ErrorDetail(msgspec.Struct):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorBody(msgspec.Struct):
    """OpenAI's error shape."""

    error: ErrorDetail


ERRORS = {
    status: ResponseSpec(ErrorBody, generate_examples=False, description=description)
    for status, description in (
        (400, "Bad request"),
        (401, "Missing or invalid token"),
        (404, "Unknown model"),
        (422, "The workflow cannot answer (invalid, or its run failed)"),
    )
}


class OpenAIError(HTTPException):
    def __init__(self, status: int, message: str, kind: str, code: str | None = None) -> None:
        super().__init__(detail=message, status_code=status)
        self.kind, self.code = kind, code


def _error_body(message: str, kind: str, code: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def openai_error(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    if isinstance(exc, OpenAIError):
        status, body = exc.status_code, _error_body(exc.detail, exc.kind, exc.code)
    elif isinstance(exc, HTTPException):
        kind = "authentication_error" if exc.status_code == 401 else "invalid_request_error"
        status, body = exc.status_code, _error_body(exc.detail, kind, None)
    elif isinstance(exc, NotFound):
        status, body = 404, _error_body(exc.detail, "invalid_request_error", "model_not_found")
    elif isinstance(exc, NodeloomError):
        status, body = 422, _error_body(exc.detail, "invalid_request_error", None)
    else:
        status, body = 500, _error_body("the server failed", "server_error", None)
    return Response(body, status_code=status, headers=getattr(exc, "headers", None))


class Door:
    """A workflow behind the door: where the question goes in and the answer comes out."""

    def __init__(self, engine: Engine, workflow: Workflow) -> None:
        plan = engine.runs.plan(workflow)
        schemas = input_schemas(plan)
        strings = [name for name, schema in schemas.items() if schema.get("type") == "string"]
        untyped = [name for name, schema in schemas.items() if "type" not in schema]
        if not (strings or untyped):
            raise OpenAIError(400, "the workflow has no string input", "invalid_request_error")
        self.input = (strings or untyped)[0]
        outputs = sorted(plan.by_role("output"), key=lambda node: node.index)
        if not outputs:
            raise OpenAIError(400, "the workflow has no output node", "invalid_request_error")
        self.output = outputs[0].params["name"]
        sources = outputs[0].sources.get("value") or [("", "")]
        self.feeder = sources[0][0]


def question(messages: list[ChatMessage]) -> str:
    for message in reversed(messages):
        if message.role == "user":
            if isinstance(message.content, list):
                return "".join(part.text or "" for part in message.content if part.type == "text")
            return message.content or ""
    raise OpenAIError(400, "messages has no user message", "invalid_request_error")


def answer_text(record: RunRecord, output: str) -> str:
    if record.status != "succeeded":
        raise OpenAIError(
            422,
            f"run {record.id} {record.status}: {record.error}",
            "workflow_failed",
            record.status,
        )
    value = record.outputs.get(output)
    return value if isinstance(value, str) else _encoder.encode(value).decode()


def _usage(record: RunRecord) -> dict[str, int]:
    prompt = sum((n.usage or {}).get("prompt_tokens", 0) for n in record.nodes.values())
    completion = sum((n.usage or {}).get("completion_tokens", 0) for n in record.nodes.values())
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _chunk(
    run_id: str, model: str, created: int, delta: dict[str, Any], finish: str | None
) -> bytes:
    body = {
        "id": f"chatcmpl-{run_id}",
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + _encoder.encode(body) + b"\n\n"


async def _stream(
    engine: Engine, active: RunHandle, door: Door, model: str, events: Subscription[Any]
) -> AsyncIterator[bytes]:
    created = int(time.time())
    streamed = False
    finished = False
    try:
        yield _chunk(active.id, model, created, {"role": "assistant", "content": ""}, None)
        async for event in events.live():
            if isinstance(event, NodeToken) and event.node == door.feeder:
                streamed = True
                yield _chunk(active.id, model, created, {"content": event.text}, None)
            elif isinstance(event, RunFinished):
                finished = True
                break
        record = await active.wait()
        try:
            text = answer_text(record, door.output)
        except OpenAIError as exc:
            yield b"data: " + _encoder.encode(_error_body(exc.detail, exc.kind, exc.code)) + b"\n\n"
        else:
            if not streamed:
                yield _chunk(active.id, model, created, {"content": text}, None)
            yield _chunk(active.id, model, created, {}, "stop")
        yield b"data: [DONE]\n\n"
    finally:
        events.close()
        if not finished:  # the client went away: stop generating for it
            active.cancel()


async def _door(
    engine: EngineDep, principal: PrincipalDep, model: str
) -> tuple[str, Workflow, int]:
    if not model.startswith(PREFIX):
        raise OpenAIError(
            404,
            f"unknown model {model!r}: use workflow:<id>",
            "invalid_request_error",
            "model_not_found",
        )
    record, workflow = await engine.current_workflow(
        model[len(PREFIX) :], owner_id=principal.owner_id
    )
    return record.id, workflow, record.version


@post(
    "/chat/completions",
    status_code=HTTP_200_OK,
    summary="Run a workflow as a chat model",
    responses=ERRORS,
)
async def chat_completions(
    engine: EngineDep, principal: PrincipalDep, data: JSONBody[ChatRequest]
) -> Response[dict[str, Any]] | Stream:
    workflow_id, workflow, version = await _door(engine, principal, data.model)
    try:
        door = Door(engine, workflow)
    except WorkflowInvalid as exc:
        raise OpenAIError(422, exc.detail, "invalid_request_error") from None
    text = question(data.messages)
    active = await engine.runs.start(
        workflow,
        {door.input: text},
        workflow_id=workflow_id,
        workflow_version=version,
        owner_id=principal.owner_id,
        caller_waits=not data.stream,
    )
    if data.stream:
        channel = engine.live.open(active.id)
        stream = _stream(engine, active, door, data.model, channel.subscribe())
        return Stream(stream, media_type="text/event-stream", headers=SSE_HEADERS)
    record = await active.wait()
    body = {
        "id": f"chatcmpl-{record.id}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": data.model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": answer_text(record, door.output)},
                "finish_reason": "stop",
            }
        ],
        "usage": _usage(record),
    }
    return Response(body)


@get("/models", summary="Each saved workflow as a model `workflow:<id>`", responses=ERRORS)
async def models(engine: EngineDep, principal: PrincipalDep) -> dict[str, Any]:
    data, cursor = [], None
    while True:
        page = await engine.workflows.list_workflows(
            owner_id=principal.owner_id, limit=200, cursor=cursor
        )
        data += [
            {
                "id": f"{PREFIX}{item['id']}",
                "object": "model",
                "created": int(item["created_at"].timestamp()),
                "owned_by": "nodeloom",
                "name": item["name"],
            }
            for item in page.items
        ]
        if page.next_cursor is None:
            return {"object": "list", "data": data}
        cursor = page.next_cursor


OpenAIController = Router(
    path="/v1",
    route_handlers=[chat_completions, models],
    tags=["openai"],
    # Keyed like the app's own handlers, so that these win for every error under /v1.
    exception_handlers={
        HTTPException: openai_error,
        NodeloomError: openai_error,
        Exception: openai_error,
    },
)

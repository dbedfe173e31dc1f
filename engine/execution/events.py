"""What the executor tells its listeners: a closed set of typed events (a tagged union)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import msgspec

from engine.execution.reasons import ReasonCode

__all__ = [
    "AnyEvent",
    "Event",
    "Listener",
    "NodeCompleted",
    "NodeFailed",
    "NodeSkipped",
    "NodeStarted",
    "NodeStatus",
    "NodeToken",
    "NodeWaiting",
    "RunFinished",
    "RunStarted",
    "RunStatus",
    "decode_event",
    "encode_event",
    "event_type",
]

RunStatus = Literal[
    "queued", "running", "waiting", "succeeded", "failed", "cancelled", "interrupted"
]
NodeStatus = Literal[
    "pending", "running", "waiting", "succeeded", "failed", "skipped", "cached", "cancelled"
]


class Event(msgspec.Struct, tag_field="type", kw_only=True, omit_defaults=True, gc=False):
    run_id: str
    seq: int


class RunStarted(Event, tag="run.started"):
    workflow: str
    node_count: int
    # Nodes taken over from earlier runs before anything executed, by the run that computed
    # their result: they are `cached` and get no event of their own.
    reused: dict[str, list[str]] = {}


class NodeStarted(Event, tag="node.started"):
    node: str
    attempt: int


class NodeToken(Event, tag="node.token"):
    node: str
    text: str


class NodeCompleted(Event, tag="node.completed"):
    node: str
    status: Literal["succeeded", "cached"]
    cache_key: str
    reason: str
    output: dict[str, Any]
    duration_ms: float
    reason_code: ReasonCode | None = None
    usage: dict[str, Any] | None = None


class NodeFailed(Event, tag="node.failed"):
    node: str
    attempt: int
    error: str
    will_retry: bool = False


class NodeSkipped(Event, tag="node.skipped"):
    node: str
    reason: str
    reason_code: ReasonCode | None = None


class NodeWaiting(Event, tag="node.waiting"):
    """A node waits for a person's answer (SPEC §16): what it asks (``prompt``, ``schema``,
    ``choices``, ``since``, ``deadline``)."""

    node: str
    question: dict[str, Any]


class RunFinished(Event, tag="run.finished"):
    status: RunStatus
    outputs: dict[str, Any]
    error: str | None = None


AnyEvent = (
    RunStarted
    | NodeStarted
    | NodeToken
    | NodeCompleted
    | NodeFailed
    | NodeSkipped
    | NodeWaiting
    | RunFinished
)
Listener = Callable[[AnyEvent], None]

_encoder = msgspec.json.Encoder()
_decoder: msgspec.json.Decoder[AnyEvent] = msgspec.json.Decoder(AnyEvent)


def encode_event(event: AnyEvent) -> bytes:
    return _encoder.encode(event)


def decode_event(data: bytes) -> AnyEvent:
    return _decoder.decode(data)


def event_type(event: AnyEvent) -> str:
    """The event's tag, as on the wire: ``node.completed`` and so on."""
    return str(event.__struct_config__.tag)

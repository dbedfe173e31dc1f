"""Conversations as models take them: a list of `Message`s, written out as one plain prompt for
models without a chat template (`transcript`), and cut to a model's context (`fit`): system
messages stay, the oldest of the others go first."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import msgspec

from engine.errors import NodeloomError

__all__ = [
    "ROLES",
    "TRANSCRIPT_STOP",
    "Message",
    "MessagesInvalid",
    "decode_messages",
    "estimate_tokens",
    "fit",
    "line",
    "transcript",
]

Role = Literal["system", "user", "assistant"]
ROLES: tuple[Role, ...] = ("system", "user", "assistant")
# A plain-completion model goes on to write the user's next turn: cut it there.
TRANSCRIPT_STOP = "\nUser:"
_SPEAKERS = {"user": "User", "assistant": "Assistant"}
CHARS_PER_TOKEN = 4  # the estimate for models whose tokenizer is not at hand
MESSAGE_OVERHEAD = 4  # tokens a chat template adds around each message, about


class MessagesInvalid(NodeloomError, ValueError):
    """A conversation that is not a list of `{role, content}` messages, or is empty."""


class Message(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    role: Role
    content: str


def decode_messages(value: Any, where: str = "messages") -> tuple[Message, ...]:
    """``[{"role", "content"}, …]`` as `Message`s; `MessagesInvalid` naming the offending item."""
    if not isinstance(value, list):
        raise MessagesInvalid(f"{where} must be an array of {{role, content}} objects")
    messages = []
    for index, item in enumerate(value):
        try:
            messages.append(msgspec.convert(item, Message))
        except msgspec.ValidationError as exc:
            raise MessagesInvalid(f"{where}/{index}: {_lower(str(exc))}") from None
    return tuple(messages)


def transcript(messages: Sequence[Message]) -> str:
    """The conversation as one prompt that ends where the assistant's answer begins::

    SYSTEM TEXT

    User: …
    Assistant: …
    User: …
    Assistant:
    """
    system = "\n\n".join(line(m) for m in messages if m.role == "system")
    turns = [line(m) for m in messages if m.role != "system"]
    head = f"{system}\n\n" if system else ""
    return head + "\n".join([*turns, "Assistant:"])


def estimate_tokens(message: Message) -> int:
    """About how many tokens a message takes, without the model's tokenizer."""
    return len(message.content) // CHARS_PER_TOKEN + MESSAGE_OVERHEAD


def line(message: Message) -> str:
    """The message as `transcript` writes it (a system message: its text)."""
    if message.role == "system":
        return message.content.strip()
    return f"{_SPEAKERS[message.role]}: {message.content.strip()}"


def fit(messages: Sequence[Message], sizes: Sequence[int], limit: int) -> tuple[Message, ...]:
    """The messages without the oldest non-system ones, as few dropped as needed for their
    ``sizes`` (tokens, one per message) to add up to at most ``limit``; the last message always
    stays (a prompt too long even then fails where the model takes it)."""
    kept = list(zip(messages, sizes, strict=True))
    total = sum(sizes)
    while total > limit:
        droppable = [i for i, (m, _) in enumerate(kept[:-1]) if m.role != "system"]
        if not droppable:
            break
        total -= kept.pop(droppable[0])[1]
    return tuple(m for m, _ in kept)


def _lower(text: str) -> str:
    return text[:1].lower() + text[1:]

"""Conversations as models take them: a list of `Message`s, written out as one plain prompt for
models without a chat template (`transcript`), and cut to a model's context (`fit`): system
messages stay, the oldest of the others go first."""

from __future__ import annotations

from collections.abc import Callable, Sequence
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


def fit(
    messages: Sequence[Message], size: Callable[[Message], int], limit: int
) -> tuple[Message, ...]:
    """The messages without the oldest non-system ones, as few dropped as needed for their
    sizes (``size``: a message's tokens) to add up to at most ``limit``; the last message always
    stays (a prompt too long even then fails where the model takes it). What is kept is the
    system messages and the newest others, so sizes are counted newest first and only until the
    limit is reached: a long conversation costs what fits in the context, not its length."""
    last = len(messages) - 1
    kept = {index for index, message in enumerate(messages) if message.role == "system"}
    total = sum(size(messages[index]) for index in kept)
    for index in range(last, -1, -1):
        if index in kept:
            continue
        taken = size(messages[index])
        if index != last and total + taken > limit:
            break
        total += taken
        kept.add(index)
    return tuple(message for index, message in enumerate(messages) if index in kept)


def _lower(text: str) -> str:
    return text[:1].lower() + text[1:]

"""One exception tree for nodeloom, with messages that say what to do."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.documents.issues import Issue

__all__ = [
    "AnswerInvalid",
    "BatchInputsInvalid",
    "Conflict",
    "InputsInvalid",
    "NodeFailure",
    "NodeWaits",
    "NodeloomError",
    "NotFound",
    "PluginError",
    "WorkflowInvalid",
    "describe",
]


class NodeloomError(Exception):
    """Base of every error nodeloom raises on purpose."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class WorkflowInvalid(NodeloomError, ValueError):
    """A workflow document failed decoding or validation; ``issues`` holds every problem."""

    def __init__(self, issues: list[Issue]) -> None:
        self.issues = issues
        lines = [issue.describe() for issue in issues]
        super().__init__(f"workflow is invalid ({len(issues)} error(s)):\n" + "\n".join(lines))


class InputsInvalid(NodeloomError, ValueError):
    """Run inputs do not fit the workflow's input nodes."""


class BatchInputsInvalid(InputsInvalid):
    """Some input sets of a batch do not fit the workflow: ``invalid`` holds the position of
    each and why."""

    def __init__(self, invalid: list[tuple[int, str]], total: int) -> None:
        super().__init__(f"{len(invalid)} of {total} input sets are invalid")
        self.invalid = invalid


class NodeFailure(NodeloomError):
    """Raised by a node's ``run``; ``retryable=False`` skips the remaining retries."""

    def __init__(self, detail: str, *, retryable: bool = True) -> None:
        super().__init__(detail)
        self.retryable = retryable


class NodeWaits(Exception):
    """Raised by a node's ``run`` that needs a person's answer to go on (SPEC §16): the node
    waits with ``question`` (``prompt``, ``schema``, ``choices``, ``deadline``…) until it is
    answered; its run waits once nothing else can go on."""

    def __init__(self, question: dict[str, Any]) -> None:
        super().__init__(question.get("prompt", ""))
        self.question = question


class AnswerInvalid(NodeloomError, ValueError):
    """An answer to a waiting node does not fit what it asks."""


class PluginError(NodeloomError, ImportError):
    """A node type from an entry point could not be loaded or is malformed."""


class NotFound(NodeloomError, LookupError):
    """No such workflow, run or other record (or it belongs to someone else)."""


class Conflict(NodeloomError):
    """The request does not fit the record's current state: a stale version, a run still running."""


def describe(exc: BaseException) -> str:
    """An exception as one line: its type, and its message when it has one."""
    message = str(exc)
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__

"""One exception tree for nodeloom, with messages that say what to do."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.issues import Issue


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


class NodeFailure(NodeloomError):
    """Raised by a node's ``run``; ``retryable=False`` skips the remaining retries."""

    def __init__(self, detail: str, *, retryable: bool = True) -> None:
        super().__init__(detail)
        self.retryable = retryable


class PluginError(NodeloomError, ImportError):
    """A node type from an entry point could not be loaded or is malformed."""


class NotFound(NodeloomError, LookupError):
    """No such workflow, run or other record (or it belongs to someone else)."""


class Conflict(NodeloomError):
    """The request does not fit the record's current state: a stale version, a run still running."""

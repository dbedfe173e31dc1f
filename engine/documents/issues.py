"""The shape of one validation problem, shared by the CLI, the API and the canvas."""

from __future__ import annotations

from typing import Literal

import msgspec

__all__ = ["Issue", "IssueCode", "pointer"]

IssueCode = Literal[
    "invalid_document",
    "unknown_node_type",
    "duplicate_node_id",
    "invalid_id",
    "unknown_port",
    "missing_node",
    "type_mismatch",
    "multiple_edges",
    "missing_input",
    "invalid_params",
    "cycle",
    "template_syntax",
    "unknown_model",
    "path_outside_workspace",
    "unknown_subgraph",
    "unknown_workflow",
    "recursive_workflow",
    "unknown_collection",
]


class Issue(msgspec.Struct, frozen=True):
    """One validation error: what, where (node, port) and a JSON pointer into the document."""

    code: IssueCode
    message: str
    node: str | None = None
    port: str | None = None
    path: str | None = None

    def describe(self) -> str:
        where = self.node or "workflow"
        if self.port:
            where += f".{self.port}"
        at = f" (at {self.path})" if self.path else ""
        return f"{where}: {self.message} [{self.code}]{at}"


def pointer(*parts: str | int) -> str:
    """A JSON pointer (RFC 6901) from path parts."""
    escaped = (str(p).replace("~", "~0").replace("/", "~1") for p in parts)
    return "/" + "/".join(escaped)

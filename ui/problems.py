"""Validation errors where they belong: the API names each error's node, port and JSON pointer
(``/nodes/2/params/max_tokens``, ``/edges/0/to``); the canvas rings the port, the params form
flags the field."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class NodeProblems:
    """One node's errors: messages by input/output port name and by params field."""

    messages: list[str] = field(default_factory=list)
    ports: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)


def _unescape(segment: str) -> str:
    return segment.replace("~1", "/").replace("~0", "~")


def param_of(path: str | None) -> str | None:
    """The top-level params field a JSON pointer names (``/nodes/2/params/schema/type``: schema)."""
    parts = [_unescape(part) for part in (path or "").split("/")[1:]]
    if len(parts) >= 4 and parts[0] == "nodes" and parts[2] == "params":
        return parts[3]
    return None


def _add(found: dict[str, str], name: str, message: str) -> None:
    found[name] = f"{found[name]}; {message}" if name in found else message


def locate(errors: list[dict[str, Any]]) -> dict[str, NodeProblems]:
    """The errors by node (errors with no node, a document-level one, are left out)."""
    located: dict[str, NodeProblems] = {}
    for error in errors:
        node = error.get("node")
        if not node:
            continue
        problems = located.setdefault(node, NodeProblems())
        message = str(error.get("message", ""))
        problems.messages.append(message)
        if error.get("port"):
            _add(problems.ports, str(error["port"]), message)
        name = param_of(error.get("path"))
        if name is not None:
            _add(problems.params, name, message)
    return located


def canvas_marks(located: dict[str, NodeProblems]) -> dict[str, dict[str, Any]]:
    """What the canvas draws: per node, the port messages and a summary for its tooltip."""
    return {node: {"ports": problems.ports, "message": "; ".join(problems.messages)}
            for node, problems in located.items()}

"""What a node shows on the canvas besides its ports: its key params in a few short lines (the
main one editable in place), and after a run a short preview of its output."""

from __future__ import annotations

import json
from typing import Any

LINE = 44  # characters of a line on a node (it wraps past ~30)
TEMPLATE_LINES = 3
PREVIEW = 120  # characters of an output's preview

# The param edited in place on the node, per type (a string param).
MAIN_PARAM = {
    "template": "template",
    "condition": "expression",
    "tool": "tool",
    "file_read": "path",
    "file_write": "path",
    "agent": "system_prompt",
    "human_input": "prompt",
    "output": "name",
    "input": "name",
}


def _short(text: str, size: int = LINE) -> str:
    text = " ".join(text.split())
    return text if len(text) <= size else text[: size - 1] + "…"


def _line(label: str, value: Any) -> dict[str, str]:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return {"label": label, "text": _short(text)}


def _first_lines(text: str) -> str:
    lines = [line.rstrip() for line in text.splitlines() if line.strip()]
    shown = [_short(line) for line in lines[:TEMPLATE_LINES]]
    if len(lines) > TEMPLATE_LINES:
        shown.append("…")
    return "\n".join(shown)


def _fed_text(node_id: str, port: str, graph: dict[str, Any]) -> str | None:
    """The start of the template text feeding ``node_id.port``, if a template feeds it."""
    for edge in graph.get("edges", []):
        if edge["to"] == f"{node_id}.{port}":
            source = edge["from"].partition(".")[0]
            for node in graph.get("nodes", []):
                if node["id"] == source and node["type"] == "template":
                    return str((node.get("params") or {}).get("template", ""))
    return None


def _body(params: dict[str, Any]) -> str | None:
    if params.get("graph"):
        return f"body {params['graph']}"
    if params.get("workflow"):
        return f"workflow {params['workflow']}"
    return None


def face(node: dict[str, Any], graph: dict[str, Any]) -> dict[str, Any]:
    """``{"lines": [{"label", "text"}], "main": {"name", "value"} | None}`` for one node; the
    main param's line, if it has one, is the first."""
    kind, params = node["type"], node.get("params") or {}
    lines: list[dict[str, str]] = []
    main_name = MAIN_PARAM.get(kind)
    main = None
    if main_name is not None:
        value = params.get(main_name, "")
        main = {"name": main_name, "value": value if isinstance(value, str) else ""}
        shown = _first_lines(main["value"]) if kind == "template" else _short(main["value"])
        lines.append({"label": main_name, "text": shown or "(empty)"})
    if kind == "llm":
        lines.append(_line("model", params.get("model", "default")))
        for port in ("prompt", "system"):
            fed = _fed_text(node["id"], port, graph)
            if fed:
                lines.append(_line(port, fed))
                break
    elif kind == "agent":
        lines.insert(0, _line("agent" if params.get("agent") else "model",
                              params.get("agent") or params.get("model", "default")))
    elif kind == "aggregate":
        lines.append(_line("mode", params.get("mode", "")))
    elif kind == "input" and "default" in params:
        lines.append(_line("default", params["default"]))
    elif kind in ("subgraph", "map", "loop"):
        body = _body(params)
        if body:
            lines.append({"label": "runs", "text": _short(body)})
        if kind == "map" and params.get("over"):
            lines.append(_line("over", params["over"]))
        if kind == "loop" and params.get("until"):
            lines.append(_line("until", params["until"]))
    elif kind == "file_write" and params.get("mode"):
        lines.append(_line("mode", params["mode"]))
    return {"lines": lines, "main": main}


def preview_of(output: dict[str, Any] | None) -> str:
    """A node's output in one short text: its value when it has one port, else ``port: value``
    pairs."""
    if not output:
        return ""
    parts = []
    for port, value in output.items():
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
        parts.append(text if len(output) == 1 else f"{port}: {text}")
    return _short(" · ".join(parts), PREVIEW)

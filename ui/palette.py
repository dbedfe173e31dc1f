"""The editor's palette of node types (drag one onto the canvas) and what a new node starts with."""

from __future__ import annotations

from typing import Any

from nicegui import ui


def port_view(port: dict[str, Any]) -> dict[str, Any]:
    """A port as the canvas needs it: the API leaves out fields at their defaults."""
    return {"name": port["name"], "type": port.get("type", "any"),
            "many": port.get("many", False), "required": port.get("required", True)}


def compatible(source: str, target: str) -> bool:
    """Whether an output of type ``source`` may feed an input of type ``target`` (SPEC §2)."""
    return source == target or "any" in (source, target) or (source, target) == (
        "integer", "number")


def starting_params(schema: dict[str, Any], node_id: str) -> dict[str, Any]:
    """Values for a new node's required params: the default, else a first guess to edit."""
    params = {}
    for name in schema.get("required", []):
        prop = schema["properties"].get(name, {})
        if "default" in prop:
            params[name] = prop["default"]
        elif "enum" in prop or prop.get("examples"):
            params[name] = (prop.get("enum") or prop["examples"])[0]
        elif name == "name":
            params[name] = node_id  # an input's or output's name
        elif name == "template":
            params[name] = "{{ text }}"
        else:
            params[name] = ""
    return params


def new_node_id(node_type: str, taken: set[str]) -> str:
    number = 1
    while f"{node_type}_{number}" in taken:
        number += 1
    return f"{node_type}_{number}"


def palette(types: dict[str, dict[str, Any]]) -> None:
    """The node types by category; each entry drags its type onto the canvas."""
    ui.label("Nodes").classes("font-bold")
    by_category: dict[str, list[dict[str, Any]]] = {}
    for item in types.values():
        by_category.setdefault(item["category"], []).append(item)
    for category in sorted(by_category):
        ui.label(category).classes("text-xs uppercase text-gray-500 mt-2")
        for item in by_category[category]:
            entry = ui.label(item["title"]).classes("nl-palette-item")
            entry.props(f'draggable=true data-palette="{item["type"]}"').tooltip(
                item["description"]
            )
            entry.on(
                "dragstart",
                js_handler="(e) => e.dataTransfer.setData("
                f"'application/x-nodeloom-type', '{item['type']}')",
            )

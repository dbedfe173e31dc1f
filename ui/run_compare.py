"""Branches side by side: the run tree drawn as a tree graph (each run a box: status, what
changed, when), and the outputs of any number of runs in columns, values that differ marked."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from nicegui import ui

BOX_W, BOX_H, GAP_X, GAP_Y = 170, 52, 36, 10
CELL = 240  # characters of a value shown in the compare view


def tree_layout(roots: list[dict[str, Any]]) -> dict[str, tuple[float, float]]:
    """Each run's box position: its depth across, its leaves down (a parent centred on its
    children)."""
    positions: dict[str, tuple[float, float]] = {}
    row = [0]

    def place(run: dict[str, Any], depth: int) -> float:
        children = run.get("children") or []
        if children:
            ys = [place(child, depth + 1) for child in children]
            y = (ys[0] + ys[-1]) / 2
        else:
            y = row[0] * (BOX_H + GAP_Y)
            row[0] += 1
        positions[run["id"]] = (depth * (BOX_W + GAP_X), y)
        return y

    for root in roots:
        place(root, 0)
    return positions


def _change(run: dict[str, Any]) -> str:
    changed = run.get("changed") or {}
    params = [f"{node}.{name}" for node, given in (changed.get("params") or {}).items()
              for name in given]
    if params:
        return ", ".join(params)
    if run.get("from_node"):
        return f"from {run['from_node']}"
    return "first run" if not run.get("parent") else "same params"


def draw_tree(roots: list[dict[str, Any]], pick: Callable[[str], Awaitable[None]]) -> None:
    """The run trees as a graph, in the current NiceGUI container; a click on a run picks it."""
    positions = tree_layout(roots)
    if not positions:
        return
    width = max(x for x, _ in positions.values()) + BOX_W + 8
    height = max(y for _, y in positions.values()) + BOX_H + 8
    lines = []

    def edges(run: dict[str, Any]) -> None:
        x, y = positions[run["id"]]
        for child in run.get("children") or []:
            cx, cy = positions[child["id"]]
            lines.append(f'<path d="M{x + BOX_W},{y + BOX_H / 2} C{x + BOX_W + GAP_X / 2},'
                         f'{y + BOX_H / 2} {cx - GAP_X / 2},{cy + BOX_H / 2} {cx},'
                         f'{cy + BOX_H / 2}" fill="none" stroke="#94a3b8" stroke-width="1.5"/>')
            child["parent"] = run["id"]
            edges(child)

    for root in roots:
        edges(root)
    with ui.element("div").classes("nl-run-tree").style(
        f"position: relative; width: {width}px; height: {height}px"
    ).props("data-run-tree"):
        # Made here of numbers only: nothing to sanitize.
        svg = (f'<svg width="{width}" height="{height}" style="position:absolute;left:0;top:0">'
               + "".join(lines) + "</svg>")
        ui.html(svg, sanitize=False)

        def box(run: dict[str, Any]) -> None:
            x, y = positions[run["id"]]
            stamp = str(run.get("created_at", ""))[11:19]
            with ui.element("div").classes(f"nl-run-box nl-run-{run['status']}").style(
                f"left: {x}px; top: {y}px; width: {BOX_W}px; height: {BOX_H}px"
            ).props(f'data-run-node="{run["id"]}" data-status="{run["status"]}"').on(
                "click", lambda _, i=run["id"]: pick(i)
            ):
                ui.label(f"{run['status']} · {stamp}").classes("font-bold")
                ui.label(_change(run)).classes("nl-run-change")
            for child in run.get("children") or []:
                box(child)

        for root in roots:
            box(root)


def _text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= CELL else text[: CELL - 1] + "…"


def compare_rows(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per workflow output and per node output port, the value of each run (None: it
    has none), and whether the runs differ there."""
    keys: dict[str, None] = {}
    for run in runs:
        keys.update({f"output {name}": None for name in run.get("outputs") or {}})
    for run in runs:
        for node_id, state in sorted((run.get("nodes") or {}).items()):
            if "/" in node_id:
                continue  # nodes inside bodies: their body node's output says
            keys.update({f"{node_id}.{port}": None for port in state.get("output") or {}})
    rows = []
    for key in keys:
        values = []
        for run in runs:
            if key.startswith("output "):
                found = (run.get("outputs") or {}).get(key[7:], None)
            else:
                node_id, _, port = key.partition(".")
                found = ((run.get("nodes") or {}).get(node_id, {}).get("output") or {}).get(port)
            values.append(found)
        encoded = {json.dumps(v, sort_keys=True, default=str) for v in values}
        rows.append({"key": key, "values": values, "differs": len(encoded) > 1})
    return rows


def show_compare(runs: list[dict[str, Any]]) -> None:
    """A dialog laying the runs' outputs side by side, differing values highlighted."""
    rows = compare_rows(runs)
    with ui.dialog() as dialog, ui.card().classes("max-w-[95vw]"):
        ui.label(f"{len(runs)} runs side by side").classes("font-bold")
        with ui.element("div").classes("nl-compare").style(
            f"grid-template-columns: 12rem repeat({len(runs)}, minmax(12rem, 1fr))"
        ).props("data-compare"):
            ui.label("")
            for run in runs:
                ui.label(f"{run['id'][-6:]} · {run['status']}").classes("font-bold").props(
                    f'data-compare-run="{run["id"]}"')
            for row in rows:
                ui.label(row["key"]).classes("font-mono text-xs")
                for run, value in zip(runs, row["values"], strict=True):
                    cell = ui.label("—" if value is None else _text(value)).classes(
                        "nl-compare-cell" + (" nl-differs" if row["differs"] else ""))
                    cell.props(f'data-cell="{run["id"]}|{row["key"]}"'
                               + (" data-differs" if row["differs"] else ""))
        ui.button("Close", on_click=dialog.close).props("flat")
    dialog.open()

"""The editor's history panel: the workflow's run trees, a run's values on the canvas, rerun from
a node with changed params, and the diff of two runs."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from nicegui import background_tasks, ui

from ui.canvas import Canvas
from ui.client import Api, ApiError
from ui.forms import MISSING, params_form
from ui.node_face import preview_of
from ui.run_compare import draw_tree, show_compare


@dataclass(frozen=True)
class HistoryNeeds:
    """What the history panel reads and calls, besides the API and the canvas."""

    workflow_id: str
    node: Callable[[str], dict[str, Any]]  # a node of the document as edited now, by id
    types: dict[str, dict[str, Any]]  # the node-type catalogue, by type
    models: list[str]  # the model names a params form offers
    follow: Callable[[str], Awaitable[None]]  # show a run's events as they happen


TRIGGERS = ["all", "api", "manual", "webhook", "schedule", "batch", "mcp"]  # the filter's choices


def _label(run: dict[str, Any], triggers: dict[str, str]) -> str:
    """Status, time, what changed and what started it (SPEC §16: `webhook:hook_…`, …)."""
    stamp = str(run.get("created_at", ""))[11:19]
    change = ""
    if run.get("replay_of"):
        change = " replay"
    elif run.get("from_node"):
        change = f" from {run['from_node']}"
    changed = run.get("changed") or run.get("changes") or {}
    if changed.get("params"):
        change += " · " + ", ".join(
            f"{node}.{name}" for node, params in changed["params"].items() for name in params
        )
    trigger = triggers.get(run["id"])
    by = f" · {trigger}" if trigger else ""
    return f"{run['status']} {stamp}{change}{by} ({run['id'][-6:]})"


def _tree(run: dict[str, Any], triggers: dict[str, str]) -> dict[str, Any]:
    return {"id": run["id"], "label": _label(run, triggers),
            "children": [_tree(child, triggers) for child in run.get("children", [])]}


class History:
    def __init__(self, api: Api, canvas: Canvas, needs: HistoryNeeds) -> None:
        self.api = api
        self.canvas = canvas
        self.needs = needs
        self.run: dict[str, Any] | None = None
        self.node_ids: list[str] = []

    async def build(self) -> None:
        with ui.row().classes("w-full"):
            ui.button("Refresh", on_click=self.refresh).props("flat dense")
            self.rerun_button = ui.button("Rerun from node", on_click=self.ask_rerun)
            self.rerun_button.props("dense").disable()
            self.diff_button = ui.button("Diff ticked", on_click=self.show_diff).props("dense")
            ui.button("Compare ticked", on_click=self.compare).props("dense data-compare-ticked")
            self.trigger = ui.select(TRIGGERS, value="all", label="Started by",
                                     on_change=self.refresh).props("dense data-trigger-filter")
        self.hint = ui.label("").classes("text-xs text-gray-500")
        self.page_link = ui.link("", "/").props("data-run-link")
        self.page_link.set_visibility(False)
        self.graph = ui.element("div").classes("w-full overflow-auto")
        self.tree = ui.tree([], label_key="label", on_select=self._selected,
                            on_tick=lambda _: None, tick_strategy="strict").classes("w-full")
        await self.refresh()

    async def refresh(self) -> None:
        query: dict[str, Any] = {"workflow_id": self.needs.workflow_id, "limit": 50}
        if self.trigger.value and self.trigger.value != "all":
            query["trigger"] = self.trigger.value
        try:
            page = await self.api.get("/api/runs", **query)
        except ApiError as exc:
            self.hint.set_text(f"Runs unavailable: {exc.detail}")
            return
        triggers = {run["id"]: run.get("trigger", "") for run in page["items"]}
        roots, trees = [], []
        for root_id in dict.fromkeys(run["root_run_id"] for run in page["items"]):
            try:
                tree = await self.api.get(f"/api/runs/{root_id}/tree")
            except ApiError:
                continue
            trees.append(tree)
            roots.append(_tree(tree, triggers))
        self.graph.clear()
        with self.graph:
            draw_tree(trees, self.pick)
        self.tree._props["nodes"] = roots
        self.tree.update()
        self.tree.expand()
        self.hint.set_text("Pick a run to see its values; tick two to diff them." if roots
                           else "No runs yet.")

    def node_selected(self, node_ids: list[str]) -> None:
        self.node_ids = node_ids
        self._update_buttons()

    def _update_buttons(self) -> None:
        ready = self.run is not None and len(self.node_ids) == 1
        self.rerun_button.set_enabled(ready)

    async def pick(self, run_id: str) -> None:
        """A run picked in the tree graph: as if picked in the list."""
        self.tree._props["selected"] = run_id
        self.tree.update()
        await self._show_run(run_id)

    async def compare(self) -> None:
        ticked = list(self.tree._props.get("ticked") or [])
        if len(ticked) < 2:
            ui.notify("Tick two runs or more to compare them", type="warning")
            return
        try:
            runs = [await self.api.get(f"/api/runs/{run_id}") for run_id in ticked]
        except ApiError as exc:
            ui.notify(exc.detail, type="negative")
            return
        show_compare(runs)

    async def _selected(self, event: Any) -> None:
        if not event.value:
            return
        await self._show_run(str(event.value))

    async def _show_run(self, run_id: str) -> None:
        self.run = await self.api.get(f"/api/runs/{run_id}")
        self.page_link.set_text(f"Open run {run_id[-6:]} on its own page")
        self.page_link.props["href"] = f"/runs/{run_id}"
        self.page_link.set_visibility(True)
        states = {}
        for node_id, state in self.run["nodes"].items():
            output = state.get("output") or {}
            text = output.get("text")
            states[node_id] = {
                "status": state["status"], "reason": state.get("reason", ""),
                "text": text if isinstance(text, str) else "", "error": state.get("error") or "",
                "preview": preview_of(state.get("output")),
            }
        self.canvas.set_states(states)
        self._update_buttons()

    async def ask_rerun(self) -> None:
        if self.run is None or len(self.node_ids) != 1:
            return
        run, node_id = self.run, self.node_ids[0]
        snapshot_node = self.needs.node(node_id)
        info = self.needs.types.get(snapshot_node["type"], {})
        changes: dict[str, Any] = {}

        def changed(name: str, value: Any) -> None:
            if value is MISSING:
                changes.pop(name, None)
            else:
                changes[name] = value

        with ui.dialog() as dialog, ui.card().classes("w-[28rem]"):
            ui.label(f"Rerun {run['id'][-6:]} from {node_id}").classes("font-bold")
            ui.label("Change params (optional); upstream results are reused.").classes("text-xs")
            params_form(info.get("params_schema", {}), dict(snapshot_node.get("params", {})),
                        changed, models=self.needs.models)

            async def go() -> None:
                dialog.close()
                body = {"from_node": node_id, "params": {node_id: changes} if changes else {}}
                try:
                    child = await self.api.post(f"/api/runs/{run['id']}/rerun", body)
                except ApiError as exc:
                    ui.notify(f"Rerun refused: {exc.detail}", type="negative")
                    return
                background_tasks.create(self.needs.follow(child["id"]))

            with ui.row():
                ui.button("Rerun", on_click=go).props("color=positive")
                ui.button("Close", on_click=dialog.close).props("flat")
        dialog.open()

    async def show_diff(self) -> None:
        ticked = list(self.tree._props.get("ticked") or [])
        if len(ticked) != 2:
            ui.notify("Tick exactly two runs to diff them", type="warning")
            return
        try:
            diff = await self.api.get(f"/api/runs/{ticked[0]}/diff/{ticked[1]}")
        except ApiError as exc:
            ui.notify(exc.detail, type="negative")
            return
        rows = [
            {"node": n["node"], "params": ", ".join(n.get("params_changed") or []) or "-",
             "output": n.get("output"), "status": " → ".join(str(s) for s in n.get("status", [])),
             "ms": " → ".join("-" if d is None else f"{d:.1f}" for d in n.get("duration_ms", []))}
            for n in diff["nodes"]
        ]
        with ui.dialog() as dialog, ui.card().classes("w-[48rem]"):
            ui.label(f"{ticked[0]} → {ticked[1]}").classes("font-bold")
            if diff.get("inputs_changed"):
                ui.label("inputs changed: " + json.dumps(diff["inputs_changed"]))
            ui.table(rows=rows, columns=[{"name": k, "label": k, "field": k} for k in rows[0]]
                     if rows else []).classes("w-full")
            ui.button("Close", on_click=dialog.close).props("flat")
        dialog.open()

"""The editor's view state (SPEC §8): zoom, pan, the selected nodes and the open panel, kept per
workflow through `GET/PUT /api/workflows/{id}/view` so that a reload finds the editor as it was
left. Saves are debounced: a burst of pans, clicks and tab changes is one PUT."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from nicegui import background_tasks, ui

from ui.client import Api, ApiError

PANELS = ("params", "run", "history", "versions")
SAVE_DELAY_S = 0.3


class ViewState:
    """What the editor shows, as saved; ``changed()`` after any of it moved."""

    def __init__(self, api: Api, workflow_id: str) -> None:
        self.api = api
        self.path = f"/api/workflows/{workflow_id}/view"
        self.zoom = 1.0
        self.pan = {"x": 0.0, "y": 0.0}
        self.selection: list[str] = []
        self.panels: list[str] = []
        self._task: asyncio.Task[None] | None = None
        self._client = ui.context.client

    async def load(self) -> None:
        """The saved state (then `keep_nodes` with the document's nodes)."""
        try:
            saved = await self.api.get(self.path)
        except ApiError:
            return  # an editor without its last view is still an editor
        self.zoom = float(saved.get("zoom", 1.0))
        pan = saved.get("pan") or {}
        self.pan = {"x": float(pan.get("x", 0)), "y": float(pan.get("y", 0))}
        self.selection = list(saved.get("selection") or [])
        self.panels = [panel for panel in saved.get("panels") or [] if panel in PANELS]

    def keep_nodes(self, node_ids: set[str]) -> None:
        """Selected nodes that no longer exist are dropped."""
        self.selection = [node for node in self.selection if node in node_ids]

    @property
    def panel(self) -> str:
        return self.panels[0] if self.panels else "params"

    def viewport(self) -> dict[str, Any] | None:
        """The canvas's starting viewport; None when never panned nor zoomed (fit the graph)."""
        if self.zoom == 1.0 and not self.pan["x"] and not self.pan["y"]:
            return None
        return {"x": self.pan["x"], "y": self.pan["y"], "zoom": self.zoom}

    def set_viewport(self, args: dict[str, Any]) -> None:
        self.zoom = float(args["zoom"])
        self.pan = {"x": float(args["x"]), "y": float(args["y"])}
        self.changed()

    def set_selection(self, node_ids: list[str]) -> None:
        if node_ids != self.selection:
            self.selection = list(node_ids)
            self.changed()

    def set_panel(self, panel: str) -> None:
        if [panel] != self.panels:
            self.panels = [panel]
            self.changed()

    def body(self) -> dict[str, Any]:
        return {"zoom": self.zoom, "pan": dict(self.pan), "selection": list(self.selection),
                "panels": list(self.panels)}

    def changed(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self._task = background_tasks.create(
            self._save(), name="save view state", context=self._client
        )

    async def _save(self) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(SAVE_DELAY_S)
            try:
                await self.api.call("PUT", self.path, body=self.body())
            except ApiError as exc:
                ui.notify(f"View not saved: {exc.detail}", type="warning")

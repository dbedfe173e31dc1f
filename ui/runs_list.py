"""The runs page (`/runs`): every run of the user, newest first, filtered by workflow, status
and what started it, a page at a time (the API's cursors)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from nicegui import ui

from ui.client import Api

PAGE = 25
STATUSES = ["queued", "running", "waiting", "succeeded", "failed", "cancelled", "interrupted"]
TRIGGERS = ["api", "manual", "webhook", "schedule", "batch", "mcp", "evaluation", "conversation"]


def _duration(run: dict[str, Any]) -> str:
    if not run.get("started_at") or not run.get("finished_at"):
        return ""
    seconds = (datetime.fromisoformat(run["finished_at"])
               - datetime.fromisoformat(run["started_at"])).total_seconds()
    return f"{seconds:.1f} s"


async def runs_list_page(api: Api) -> None:
    workflows = (await api.get("/api/workflows", limit=200))["items"]
    names = {item["id"]: item["name"] for item in workflows}
    cursors: list[str | None] = [None]  # the cursor of each page seen, the first's is None
    with ui.column().classes("w-full max-w-5xl mx-auto p-4"):
        ui.label("Runs").classes("text-xl font-bold")
        with ui.row().classes("items-center gap-2"):
            workflow = ui.select(names, label="Workflow", clearable=True).props(
                "dense data-runs-workflow").classes("w-64")
            status = ui.select(STATUSES, label="Status", clearable=True).props(
                "dense data-runs-status").classes("w-40")
            trigger = ui.select(TRIGGERS, label="Started by", clearable=True).props(
                "dense data-runs-trigger").classes("w-40")
        table = ui.column().classes("w-full")
        with ui.row().classes("items-center gap-2"):
            previous = ui.button("Previous page").props("flat dense data-runs-previous")
            where = ui.label("").classes("text-sm text-gray-500")
            following = ui.button("Next page").props("flat dense data-runs-next")

    async def show(page_index: int) -> None:
        query: dict[str, Any] = {"limit": PAGE}
        for name, field in (("workflow_id", workflow), ("status", status), ("trigger", trigger)):
            if field.value:
                query[name] = field.value
        if cursors[page_index]:
            query["cursor"] = cursors[page_index]
        page = await api.get("/api/runs", **query)
        del cursors[page_index + 1:]
        if page.get("next_cursor"):
            cursors.append(page["next_cursor"])
        table.clear()
        with table:
            if not page["items"]:
                ui.label("No runs match.").classes("text-gray-500")
            for run in page["items"]:
                with ui.row().classes("items-center w-full border-b py-1 gap-3 text-sm").props(
                    f'data-run-row="{run["id"]}"'
                ):
                    ui.link(run["id"], f"/runs/{run['id']}").classes("font-mono")
                    ui.label(run.get("workflow_name") or names.get(run["workflow_id"], ""))
                    ui.label(run["status"]).props(f'data-run-status="{run["status"]}"').classes(
                        f"nl-run-{run['status']} font-bold")
                    ui.label(run.get("trigger", "")).classes("text-gray-500")
                    if run.get("parent_run_id"):
                        ui.label("rerun").classes("text-xs text-gray-500")
                    ui.space()
                    ui.label(_duration(run)).classes("text-gray-500")
                    ui.label(run["created_at"][:19].replace("T", " ")).classes("text-gray-500")
        previous.set_enabled(page_index > 0)
        following.set_enabled(len(cursors) > page_index + 1)
        where.set_text(f"page {page_index + 1}")
        state["page"] = page_index

    state = {"page": 0}
    previous.on_click(lambda: show(state["page"] - 1))
    following.on_click(lambda: show(state["page"] + 1))
    for field in (workflow, status, trigger):
        field.on_value_change(lambda: show(0))
    await show(0)

"""The usage page: tokens and cost of the caller's runs by model, workflow or day, from
``GET /api/usage``, as a chart and a table."""

from __future__ import annotations

from typing import Any

from nicegui import ui

from ui.client import Api

GROUPS = {"model": "model", "workflow": "workflow", "day": "day"}


def usage_chart(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """ECharts options: prompt and completion tokens stacked per key, cost on its own axis."""
    keys = [row["key"] for row in rows]
    return {
        "tooltip": {"trigger": "axis"},
        "legend": {"data": ["prompt tokens", "completion tokens", "cost"]},
        "xAxis": {"type": "category", "data": keys},
        "yAxis": [{"type": "value", "name": "tokens"}, {"type": "value", "name": "cost"}],
        "series": [
            {"name": "prompt tokens", "type": "bar", "stack": "tokens",
             "data": [row["prompt_tokens"] for row in rows]},
            {"name": "completion tokens", "type": "bar", "stack": "tokens",
             "data": [row["completion_tokens"] for row in rows]},
            {"name": "cost", "type": "line", "yAxisIndex": 1,
             "data": [round(row["cost"], 6) for row in rows]},
        ],
    }  # fmt: skip


async def usage_page(api: Api) -> None:
    state: dict[str, Any] = {"group_by": "model", "since": "", "until": ""}
    with ui.column().classes("w-full max-w-5xl mx-auto p-4 gap-3"):
        with ui.row().classes("items-center gap-3"):
            ui.label("Usage").classes("text-xl font-bold")
            ui.toggle(GROUPS, value="model", on_change=lambda e: pick("group_by", e.value)).props(
                "data-usage-group"
            )
            ui.input("since (YYYY-MM-DD)", on_change=lambda e: pick("since", e.value)).props(
                "dense data-usage-since"
            )
            ui.input("until (YYYY-MM-DD)", on_change=lambda e: pick("until", e.value)).props(
                "dense data-usage-until"
            )
        box = ui.column().classes("w-full")

    async def pick(key: str, value: Any) -> None:
        state[key] = value or ""
        await show()

    async def show() -> None:
        params = {"group_by": state["group_by"]}
        for bound in ("since", "until"):
            if len(state[bound]) == 10:  # a whole date: from its midnight (UTC)
                params[bound] = f"{state[bound]}T00:00:00Z"
        rows = (await api.get("/api/usage", **params))["rows"]
        box.clear()
        with box:
            if not rows:
                ui.label("No model calls in this period.").props("data-usage-empty")
                return
            ui.echart(usage_chart(rows)).classes("w-full h-72").props("data-usage-chart")
            columns = [{"name": k, "label": k.replace("_", " "), "field": k} for k in
                       ("key", "runs", "prompt_tokens", "completion_tokens", "cost")]  # fmt: skip
            shown = [{**row, "cost": f"{row['cost']:.6f}"} for row in rows]
            ui.table(columns=columns, rows=shown, row_key="key").classes("w-full").props(
                "data-usage-table"
            )

    await show()

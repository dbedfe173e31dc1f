"""A workflow's evaluations page (SPEC §17): start one (a dataset, the variants, the
evaluators), follow its progress, and read its report: per variant a summary and a bar chart
(pass rate, score, cost, latency), per row each variant's output and score side by side with a
link to its run; the report exported as CSV or XLSX. Plain calls to `/api/datasets` and
`/api/evaluations`."""

from __future__ import annotations

import json
from typing import Any

from nicegui import ui

from ui.client import Api, ApiError

SHOWN_CHARS = 120
REFRESH_S = 1.0


def chart_options(variants: dict[str, Any]) -> dict[str, Any]:
    """ECharts options: a group of bars per variant (cost and latency on axes of their own)."""
    names = list(variants)
    return {
        "tooltip": {"trigger": "axis"},
        "legend": {"data": ["pass rate %", "mean score %", "cost", "latency p50 ms"]},
        "xAxis": {"type": "category", "data": names},
        "yAxis": [
            {"type": "value", "name": "%", "max": 100},
            {"type": "value", "name": "ms"},
            {"type": "value", "name": "cost", "position": "right", "offset": 56},
        ],
        "grid": {"right": 110},
        "series": [
            {"name": "pass rate %", "type": "bar",
             "data": [round(variants[n]["pass_rate"] * 100, 1) for n in names]},
            {"name": "mean score %", "type": "bar",
             "data": [round(variants[n]["mean_score"] * 100, 1) for n in names]},
            {"name": "cost", "type": "bar", "yAxisIndex": 2,
             "data": [round(variants[n].get("cost", 0.0), 6) for n in names]},
            {"name": "latency p50 ms", "type": "bar", "yAxisIndex": 1,
             "data": [round(variants[n]["latency_p50_ms"], 1) for n in names]},
        ],
    }  # fmt: skip


def _shown(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + " …"


async def evaluations_page(api: Api, workflow_id: str) -> None:
    workflow = await api.get(f"/api/workflows/{workflow_id}")
    outputs = [n["params"]["name"] for n in workflow["document"]["nodes"] if n["type"] == "output"]
    datasets = (await api.get("/api/datasets"))["items"]
    chosen: dict[str, str | None] = {"id": None}
    with ui.column().classes("w-full max-w-6xl mx-auto p-4 gap-3"):
        with ui.row().classes("items-center"):
            ui.link(workflow["document"]["name"], f"/workflows/{workflow_id}").classes(
                "text-xl font-bold")
            ui.label("evaluations").classes("text-xl text-gray-500")
        with ui.card().classes("w-full"):
            ui.label("New evaluation").classes("font-bold")
            dataset = ui.select(
                {d["id"]: f"{d['name']} ({len(d['rows'])} rows)" for d in datasets},
                label="dataset",
            ).classes("w-96").props("data-eval-dataset")
            variants = ui.textarea(
                "variants (JSON)", value=json.dumps([{"name": "current"}], indent=1)
            ).classes("w-full font-mono").props("data-eval-variants")
            evaluators = ui.textarea(
                "evaluators (JSON)",
                value=json.dumps([{"output": name, "kind": "equals"} for name in outputs[:1]]),
            ).classes("w-full font-mono").props("data-eval-evaluators")
            error = ui.label("").classes("text-red-700 text-sm")

            async def start() -> None:
                try:
                    body = {
                        "workflow_id": workflow_id,
                        "dataset_id": dataset.value,
                        "variants": json.loads(variants.value),
                        "evaluators": json.loads(evaluators.value),
                    }
                    started = await api.post("/api/evaluations", body)
                except json.JSONDecodeError as exc:
                    error.set_text(f"not JSON: {exc}")
                    return
                except ApiError as exc:
                    error.set_text(exc.detail)
                    return
                error.set_text("")
                chosen["id"] = started["id"]
                await show_list()

            ui.button("Start", on_click=start).props("data-eval-start color=positive")
        listing = ui.column().classes("w-full gap-1")
        report_box = ui.column().classes("w-full gap-2")

    async def show_list() -> None:
        items = (await api.get("/api/evaluations", workflow_id=workflow_id))["items"]
        listing.clear()
        with listing:
            ui.label("Evaluations").classes("text-lg font-bold")
            if not items:
                ui.label("None yet.").classes("text-sm text-gray-500")
            for item in items:
                progress = item["report"]["progress"]
                with ui.row().classes("items-center gap-3").props(f'data-eval="{item["id"]}"'):
                    ui.button(item["id"][-8:], on_click=lambda _, i=item["id"]: pick(i)).props(
                        "flat dense no-caps")
                    ui.label(item["status"]).props(f'data-eval-status="{item["status"]}"')
                    ui.label(f"{progress['done']}/{progress['total']} rows")
                    ui.label(str(item["created_at"])[:19].replace("T", " ")).classes(
                        "text-gray-500 text-sm")
        if chosen["id"] is None and items:
            chosen["id"] = items[0]["id"]
        await show_report()

    async def pick(evaluation_id: str) -> None:
        chosen["id"] = evaluation_id
        await show_report()

    async def show_report() -> None:
        if chosen["id"] is None:
            return
        evaluation = await api.get(f"/api/evaluations/{chosen['id']}")
        report = evaluation["report"]
        report_box.clear()
        with report_box:
            with ui.row().classes("items-center gap-3"):
                ui.label(f"Evaluation {evaluation['id']}").classes("text-lg font-bold")
                ui.label(evaluation["status"])
                for fmt in ("csv", "xlsx"):
                    ui.button(fmt.upper(), on_click=lambda _, f=fmt: export(evaluation["id"], f)
                              ).props(f"flat dense data-eval-export={fmt}")  # fmt: skip
            summary(report["variants"])
            if report["variants"] and report["progress"]["done"]:
                ui.echart(chart_options(report["variants"])).classes("w-full h-64").props(
                    "data-eval-chart")
            rows(report)

    def summary(per_variant: dict[str, Any]) -> None:
        columns = [{"name": key, "label": label, "field": key} for key, label in (
            ("variant", "variant"), ("pass_rate", "pass rate"), ("mean_score", "score"),
            ("tokens", "tokens"), ("cost", "cost"), ("latency_p50_ms", "p50 ms"),
            ("executed_nodes", "executed"),
            ("reused_nodes", "reused"))]  # fmt: skip
        table_rows = [
            {"variant": name, "pass_rate": f"{each['pass_rate']:.0%}",
             "mean_score": f"{each['mean_score']:.2f}", "tokens": each["tokens"],
             "cost": f"{each.get('cost', 0.0):.6f}",
             "latency_p50_ms": f"{each['latency_p50_ms']:.1f}",
             "executed_nodes": each["executed_nodes"], "reused_nodes": each["reused_nodes"]}
            for name, each in per_variant.items()
        ]  # fmt: skip
        ui.table(columns=columns, rows=table_rows, row_key="variant").classes("w-full").props(
            "data-eval-summary")

    def rows(report: dict[str, Any]) -> None:
        names = list(report["variants"])
        with ui.grid(columns=len(names) + 1).classes("w-full gap-1 text-sm").props(
            "data-eval-rows"
        ):
            ui.label("row").classes("font-bold")
            for name in names:
                ui.label(name).classes("font-bold")
            for row in sorted(report["rows"], key=lambda r: r["index"]):
                ui.label(f"{row['index']}: {_shown(row['inputs'])}").classes("text-gray-600")
                for name in names:
                    result = row["variants"][name]
                    with ui.column().classes("gap-0"):
                        mark = "✓" if result["passed"] else "✗"
                        ui.link(f"{mark} {result['score']:.2f} run {result['run_id'][-6:]}",
                                f"/runs/{result['run_id']}")  # fmt: skip
                        ui.label(_shown(result["outputs"])).classes("font-mono")

    async def export(evaluation_id: str, fmt: str) -> None:
        response = await api.call(
            "GET", f"/api/evaluations/{evaluation_id}/export", params={"format": fmt}
        )
        ui.download(response.content, f"{evaluation_id}.{fmt}")

    async def refresh() -> None:
        if chosen["id"] is None:
            return
        evaluation = await api.get(f"/api/evaluations/{chosen['id']}")
        if evaluation["status"] == "running" or listing_stale["running"]:
            listing_stale["running"] = evaluation["status"] == "running"
            await show_list()

    listing_stale = {"running": True}
    await show_list()
    ui.timer(REFRESH_S, refresh)

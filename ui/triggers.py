"""A workflow's triggers page (SPEC §16): its schedules (cron, time zone, inputs, catch-up,
the next slot) and webhooks (made with a secret shown once, rotated, deleted), and the runs
they started. Plain calls to `/api/workflows/{id}/schedules`, `…/hooks` and `/api/runs`."""

from __future__ import annotations

import json
from typing import Any

from nicegui import ui

from ui.client import Api, ApiError

SIGNING = (
    "Sign each call: X-Nodeloom-Signature: sha256=<hex HMAC-SHA256 of the raw body with the "
    "secret>. The JSON body's fields are the run's inputs; add ?wait=true for the finished run."
)


async def triggers_page(api: Api, workflow_id: str) -> None:
    workflow = await api.get(f"/api/workflows/{workflow_id}")
    base = f"/api/workflows/{workflow_id}"
    box = ui.column().classes("w-full max-w-4xl mx-auto p-4")
    dialogs = ui.element()  # outside ``box``, which each refresh rebuilds

    async def refresh() -> None:
        schedules = (await api.get(f"{base}/schedules"))["items"]
        hooks = (await api.get(f"{base}/hooks"))["items"]
        started = [
            run
            for kind in ("schedule", "webhook")
            for run in (await api.get("/api/runs", workflow_id=workflow_id, trigger=kind,
                                      limit=10))["items"]
        ]
        started.sort(key=lambda run: str(run["created_at"]), reverse=True)
        box.clear()
        with box:
            with ui.row().classes("items-center w-full"):
                ui.link(workflow["document"]["name"], f"/workflows/{workflow_id}").classes(
                    "text-xl font-bold")
                ui.label("triggers").classes("text-xl text-gray-500")
            _schedules(schedules)
            _hooks(hooks)
            ui.label("Runs they started").classes("text-lg font-bold mt-4")
            if not started:
                ui.label("None yet.").classes("text-sm text-gray-500")
            for run in started[:10]:
                with ui.row().classes("items-center gap-3").props(f'data-run="{run["id"]}"'):
                    ui.link(run["id"][-6:], f"/runs/{run['id']}")
                    ui.label(run["status"])
                    ui.label(str(run["created_at"])[:19].replace("T", " "))
                    ui.label(run["trigger"]).classes("text-xs text-gray-500")

    def _schedules(schedules: list[dict[str, Any]]) -> None:
        with ui.row().classes("items-center w-full mt-2"):
            ui.label("Schedules").classes("text-lg font-bold")
            ui.space()
            ui.button("New schedule", on_click=new_schedule).mark("new-schedule")
        if not schedules:
            ui.label("No schedules: runs start only when asked.").classes("text-sm text-gray-500")
        for item in schedules:
            with ui.row().classes("items-center w-full border-b py-1").props(
                f'data-schedule="{item["id"]}"'
            ):
                ui.label(item["cron"]).classes("font-mono font-bold")
                ui.label(item["timezone"])
                ui.label(f"catch up: {item['catch_up']}").classes("text-xs")
                ui.label("next " + str(item["next_run_at"])[:19].replace("T", " ") + " UTC").props(
                    "data-next-run")
                if item["inputs"]:
                    ui.label(json.dumps(item["inputs"])).classes("text-xs font-mono")
                ui.space()
                ui.button("Delete", on_click=lambda i=item: remove(f"schedules/{i['id']}")).props(
                    "flat dense color=negative").mark(f"delete-{item['id']}")

    def _hooks(hooks: list[dict[str, Any]]) -> None:
        with ui.row().classes("items-center w-full mt-4"):
            ui.label("Webhooks").classes("text-lg font-bold")
            ui.space()
            ui.button("New webhook", on_click=new_hook).mark("new-hook")
        if not hooks:
            ui.label("No webhooks.").classes("text-sm text-gray-500")
        for item in hooks:
            with ui.row().classes("items-center w-full border-b py-1").props(
                f'data-hook="{item["id"]}"'
            ):
                ui.label(f"POST {item['url']}").classes("font-mono")
                ui.label("made " + str(item["created_at"])[:19].replace("T", " ")).classes(
                    "text-xs")
                ui.space()
                ui.button("Rotate secret", on_click=lambda i=item: rotate(i["id"])).props(
                    "flat dense").mark(f"rotate-{item['id']}")
                ui.button("Delete", on_click=lambda i=item: remove(f"hooks/{i['id']}")).props(
                    "flat dense color=negative").mark(f"delete-{item['id']}")

    async def remove(what: str) -> None:
        await api.call("DELETE", f"{base}/{what}")
        await refresh()

    def show_secret(hook: dict[str, Any]) -> None:
        with dialogs, ui.dialog() as dialog, ui.card().classes("w-[36rem]"):
            ui.label(f"Webhook POST {hook['url']}").classes("font-bold")
            ui.label("Its secret, shown this once:")
            ui.input(value=hook["secret"]).props("readonly").classes("w-full font-mono").mark(
                "hook-secret")
            ui.label(SIGNING).classes("text-xs")
            ui.button("Close", on_click=dialog.close).props("flat")
        dialog.open()

    async def new_hook() -> None:
        show_secret(await api.post(f"{base}/hooks"))
        await refresh()

    async def rotate(hook_id: str) -> None:
        show_secret(await api.post(f"{base}/hooks/{hook_id}/rotate"))
        await refresh()

    def new_schedule() -> None:
        with dialogs, ui.dialog() as dialog, ui.card().classes("w-[32rem]"):
            ui.label("New schedule").classes("font-bold")
            cron = ui.input("cron", placeholder="0 9 * * 1-5").classes("w-full").mark("cron")
            ui.label("minute hour day month weekday (a sixth field: seconds)").classes("text-xs")
            zone = ui.input("time zone", value="UTC").classes("w-full").mark("timezone")
            inputs = ui.textarea("inputs (JSON)", value="{}").classes("w-full").mark("inputs")
            catch_up = ui.select(["none", "latest"], value="none",
                                 label="after missed slots, run").mark("catch-up")
            error = ui.label("").classes("text-red-700 text-sm").props("data-schedule-error")

            async def save() -> None:
                try:
                    given = json.loads(inputs.value or "{}")
                except json.JSONDecodeError as exc:
                    error.set_text(f"inputs: {exc}")
                    return
                body = {"cron": cron.value, "timezone": zone.value or "UTC", "inputs": given,
                        "catch_up": catch_up.value}
                try:
                    await api.post(f"{base}/schedules", body)
                except ApiError as exc:
                    error.set_text(exc.detail)
                    return
                dialog.close()
                await refresh()

            with ui.row():
                ui.button("Add", on_click=save).props("color=positive").mark("add-schedule")
                ui.button("Close", on_click=dialog.close).props("flat")
        dialog.open()

    await refresh()

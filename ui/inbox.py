"""What waits for the user's answer (SPEC §16): the `/inbox` page, the count in the header, and
the answer form of a waiting node (from its schema, or a button per choice), also shown on the
run's page. Answers go through the REST API like any other client's."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from nicegui import ui

from ui.client import Api, ApiError
from ui.forms import inputs_form

Answered = Callable[[dict[str, Any]], Awaitable[None]]  # called with the run as it stands


def answer_form(api: Api, item: dict[str, Any], on_answered: Answered) -> None:
    """The form answering one waiting node (an inbox item: run_id, node, prompt, schema…)."""
    url = f"/api/runs/{item['run_id']}/nodes/{item['node']}/answer"
    error = ui.label("").classes("text-red-700 text-sm")

    async def send(value: Any) -> None:
        try:
            run = await api.post(url, {"answer": value})
        except ApiError as exc:
            error.set_text(exc.detail)
            return
        ui.notify(f"Answered {item['node']}")
        await on_answered(run)

    with ui.column().classes("w-full gap-1").props(
        f'data-answer-form="{item["run_id"]}/{item["node"]}"'
    ):
        ui.label(item["prompt"]).classes("whitespace-pre-wrap")
        if item.get("choices"):
            with ui.row().classes("gap-2"):
                for choice in item["choices"]:
                    ui.button(choice, on_click=lambda _, c=choice: send(c)).props(
                        f'no-caps data-choice="{choice}"'
                    )
            return
        schema = item.get("schema") or {}
        value = inputs_form([{"name": "answer", "schema": schema}])["answer"]

        async def submit() -> None:
            try:
                answer = value()
            except ValueError as exc:  # JSON that does not parse
                error.set_text(f"not JSON: {exc}")
                return
            await send(answer)

        ui.button("Answer", on_click=submit).props("data-answer-send")


async def inbox_count(api: Api) -> int:
    try:
        return len((await api.get("/api/inbox"))["items"])
    except ApiError:
        return 0


async def inbox_page(api: Api) -> None:
    box = ui.column().classes("w-full max-w-4xl mx-auto p-4 gap-3")

    async def show() -> None:
        items = (await api.get("/api/inbox"))["items"]
        box.clear()
        with box:
            ui.label("Inbox").classes("text-xl font-bold")
            if not items:
                ui.label("Nothing waits for your answer.").classes("text-gray-500").props(
                    "data-inbox-empty"
                )
            for item in items:  # newest first
                with ui.card().classes("w-full").props(f'data-inbox-item="{item["run_id"]}"'):
                    with ui.row().classes("items-center gap-3 text-sm"):
                        ui.label(item["workflow_name"]).classes("font-bold")
                        ui.label(f"node {item['node']}").classes("font-mono")
                        ui.link(f"run {item['run_id']}", f"/runs/{item['run_id']}")
                        ui.label(f"since {item['since'][:19]}").classes("text-gray-500")
                        if item.get("deadline"):
                            ui.label(f"until {item['deadline'][:19]}").classes("text-gray-500")
                    answer_form(api, item, lambda _run: show())

    await show()

"""The Tokens page (SPEC §18): the signed-in user's API tokens through `/api/tokens`: create one
with a name and an optional expiry (its secret shown once), see when each was last used, revoke."""

from __future__ import annotations

from typing import Any

from nicegui import ui

from ui.client import Api


def _when(stamp: str | None) -> str:
    return stamp[:16].replace("T", " ") if stamp else "-"


async def tokens_page(api: Api) -> None:
    me = await api.get("/api/me")
    box = ui.column().classes("w-full max-w-3xl mx-auto p-4")
    with box:
        ui.label("API tokens").classes("text-xl font-bold")
    if me["open_mode"]:
        with box:
            ui.label(
                "This server runs in open local mode: there are no users, so no tokens. "
                "Create a user with `nodeloom users create NAME --password`."
            ).props("data-open-mode")
        return
    with box, ui.row().classes("items-end w-full"):
        name = ui.input("Name").props("data-token-name").classes("w-64")
        days = ui.number("Expires in days (empty: never)", min=1, max=3650, precision=0)
        days.props("data-token-days").classes("w-56")
        create_button = ui.button("Create token")
    shown = ui.column().classes("w-full max-w-3xl mx-auto px-4")
    listing = ui.column().classes("w-full max-w-3xl mx-auto px-4")

    async def refresh() -> None:
        tokens = (await api.get("/api/tokens"))["items"]
        listing.clear()
        with listing:
            if not tokens:
                ui.label("No tokens.")
            for token in tokens:
                row(token)

    def row(token: dict[str, Any]) -> None:
        current = token["id"] == me["token_id"]
        with ui.row().classes("items-center w-full border-b py-1").props(
            f'data-token-id="{token["id"]}"'
        ):
            ui.label(token["name"] or "(no name)").classes("font-bold")
            if current:
                ui.label("this browser").classes("text-xs text-gray-500")
            ui.space()
            ui.label(
                f"created {_when(token['created_at'])} · used {_when(token['last_used_at'])} · "
                f"expires {_when(token['expires_at']) if token['expires_at'] else 'never'}"
            ).classes("text-xs text-gray-600")
            ui.button("Revoke", on_click=lambda: revoke(token["id"])).props(
                "flat dense color=negative"
            )

    async def create() -> None:
        label = (name.value or "").strip()
        if not label:
            name.props["error"] = True
            name.props["error-message"] = "give the token a name"
            name.update()
            return
        body: dict[str, Any] = {"name": label}
        if days.value:
            body["expires_in_days"] = int(days.value)
        made = await api.post("/api/tokens", body)
        name.value = ""
        shown.clear()
        with shown, ui.card().classes("w-full bg-amber-50"):
            ui.label(f"Token {made['name']}: copy it now, it is not shown again.")
            ui.label(made["token"]).classes("font-mono break-all").props("data-new-token")
        await refresh()

    async def revoke(token_id: str) -> None:
        await api.call("DELETE", f"/api/tokens/{token_id}")
        ui.notify("Token revoked", type="positive")
        await refresh()

    create_button.on_click(create)
    name.on_value_change(lambda: (name.props.pop("error", None),
                                  name.props.pop("error-message", None)))
    await refresh()

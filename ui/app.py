"""The canvas as an ASGI app: NiceGUI on a FastAPI app of its own, its pages registered."""

from __future__ import annotations

import os
from collections.abc import Callable

from fastapi import FastAPI
from nicegui import ui
from nicegui.storage import Storage

from ui import pages
from ui.auth import STATE_DIR, secret_key


def create_gui(api_url: Callable[[], str]) -> FastAPI:
    """The canvas; its pages call the REST API at ``api_url()``."""
    gui = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    pages.register(api_url)
    if "NICEGUI_STORAGE_PATH" not in os.environ:  # signed-in tokens: in the state folder
        folder = (STATE_DIR / "ui-storage").resolve()
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)  # readable by the server alone
        Storage.path = folder
    ui.run_with(
        gui,
        title="nodeloom",
        storage_secret=secret_key(),
        show_welcome_message=False,
        reconnect_timeout=10,
        tailwind=False,  # its runtime restyles every element per DOM change: see utilities.css
    )
    return gui

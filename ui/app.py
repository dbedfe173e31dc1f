"""The canvas as an ASGI app: NiceGUI on a FastAPI app of its own, its pages registered."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable

from fastapi import FastAPI
from nicegui import ui

from ui import pages


def create_gui(api_url: Callable[[], str]) -> FastAPI:
    """The canvas; its pages call the REST API at ``api_url()``."""
    gui = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    pages.register(api_url)
    ui.run_with(
        gui,
        title="nodeloom",
        storage_secret=os.environ.get("NODELOOM_UI_SECRET") or secrets.token_urlsafe(32),
        show_welcome_message=False,
        reconnect_timeout=10,
    )
    return gui

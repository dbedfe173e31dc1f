"""The canvas's pages alone, for NiceGUI's simulated `User` (tests/ui/test_user_pages.py): no
browser; the pages call the real API at ``$NODELOOM_TEST_API``."""

import os

from nicegui import ui

from ui import pages

pages.register(lambda: os.environ["NODELOOM_TEST_API"])
ui.run(storage_secret="user-simulation-only", tailwind=False)

"""A real nodeloom server (API + canvas) in a subprocess and a real headless Chromium driving it.

The browser is Debian's `chromium` with its `chromedriver` (installed by scripts/system-deps);
nothing is downloaded."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement

CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1400,900",
)
ROOT = Path(__file__).resolve().parent.parent.parent

SERVE = """
import sys
from pathlib import Path
from typing import Any
import uvicorn
from server.config import ServerConfig
from server.web import create_web_app
folder, port = Path(sys.argv[1]), int(sys.argv[2])
config = ServerConfig(
    database_url=f"sqlite:///{folder}/nodeloom.db", workspace=folder / "workspace",
    models_dir=Path(sys.argv[3]), port=port,
)
uvicorn.run(create_web_app(config), host="127.0.0.1", port=port, log_level="warning")
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def server(folder: Path) -> Iterator[str]:
    """The base URL of a `nodeloom serve`-equivalent server over a fresh database."""
    port = free_port()
    log = (folder / "server.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-c", SERVE, str(folder), str(port), str(ROOT / "models")],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    (folder / "server.pid").write_text(str(process.pid))
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{base}/api/health", timeout=2).status_code == 200:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((folder / "server.log").read_text()[-3000:])
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def chromium() -> tuple[str, str] | None:
    """(browser, driver) paths, or None when Debian's chromium is not installed."""
    browser = shutil.which("chromium")
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


def wait_for(check: Callable[[], Any], timeout: float = 15, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what or check}")
        time.sleep(0.1)


def find(browser: WebDriver, css: str) -> list[WebElement]:
    return browser.find_elements(By.CSS_SELECTOR, css)


def button(browser: WebDriver, name: str) -> WebElement:
    return wait_for(
        lambda: next((b for b in find(browser, "button") if b.text.strip().lower() == name.lower()
                      and b.is_displayed()), None),
        what=f"the {name} button",
    )

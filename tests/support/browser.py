"""A real nodeloom server (API + canvas) in a subprocess and a real headless Chromium driving it.

The browser is Debian's `chromium` with its `chromedriver` (installed by scripts/system-deps);
nothing is downloaded."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium.common.exceptions import (
    ElementClickInterceptedException,
    ElementNotInteractableException,
    StaleElementReferenceException,
)
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement

from tests.support.documents import ROOT
from tests.support.network import free_port

CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1400,900",
)

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


@contextlib.contextmanager
def server(folder: Path, root: Path = ROOT) -> Iterator[str]:
    """The base URL of a `nodeloom serve`-equivalent server over a fresh database, running the
    checkout at ``root`` (its own code: a benchmark compares two)."""
    port = free_port()
    log = (folder / "server.log").open("w")
    environment = {
        **os.environ,
        **({"PYTHONPATH": str(root)} if root != ROOT else {}),
        "NODELOOM_SECRET_KEY": secrets.token_urlsafe(32),  # nothing kept in the repository
        "NICEGUI_STORAGE_PATH": str(folder / "ui-storage"),
    }
    process = subprocess.Popen(
        [sys.executable, "-c", SERVE, str(folder), str(port), str(root / "models")],
        cwd=root, stdout=log, stderr=subprocess.STDOUT, env=environment,
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
    """Poll `check` until it is truthy. An element redrawn while `check` read it is a "not yet"."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
        except StaleElementReferenceException:
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what or check}")
        time.sleep(0.1)


def find(browser: WebDriver, css: str) -> list[WebElement]:
    return browser.find_elements(By.CSS_SELECTOR, css)


def click_when_free(find_element: Callable[[], WebElement], what: str) -> None:
    """Click an element as soon as it can be clicked: shown, and nothing covering it (a panel
    sliding in, a tree redrawn, a row still laid out)."""

    def attempt() -> bool:
        try:
            find_element().click()
        except (
            ElementClickInterceptedException,
            ElementNotInteractableException,
            StaleElementReferenceException,
            IndexError,  # not there yet
            StopIteration,
        ):
            return False
        return True

    wait_for(attempt, what=what)


# Whether nothing covers the middle of an element (a dialog or panel still moving in would take
# a click meant for it).
_UNCOVERED = """
const box = arguments[0].getBoundingClientRect();
const top = document.elementFromPoint(box.left + box.width / 2, box.top + box.height / 2);
return top !== null && (top === arguments[0] || arguments[0].contains(top));
"""


def button(browser: WebDriver, name: str) -> WebElement:
    """The shown button of that name, once nothing covers it."""

    def uncovered() -> WebElement | None:
        for found in find(browser, "button"):
            try:
                if (
                    found.text.strip().lower() == name.lower()
                    and found.is_displayed()
                    and browser.execute_script(_UNCOVERED, found)
                ):
                    return found
            except StaleElementReferenceException:
                continue
        return None

    return wait_for(uncovered, what=f"the {name} button")


ARTIFACTS = ROOT / "tests" / "artifacts"


def auth(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def create(base_url: str, document: dict[str, Any], token: str | None = None) -> str:
    answer = httpx.post(f"{base_url}/api/workflows", json=document, headers=auth(token),
                        timeout=10)
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def saved(base_url: str, workflow_id: str, token: str | None = None) -> dict[str, Any]:
    answer = httpx.get(f"{base_url}/api/workflows/{workflow_id}", headers=auth(token), timeout=10)
    return dict(answer.json())


def example(name: str) -> dict[str, Any]:
    return dict(json.loads((ROOT / "workflows" / name).read_text()))


def open_editor(
    browser: WebDriver, base_url: str, workflow_id: str, token: str | None = None
) -> None:
    """Open the editor and wait until every node of the saved document is drawn."""
    browser.get(f"{base_url}/workflows/{workflow_id}")
    wanted = {node["id"] for node in saved(base_url, workflow_id, token)["document"]["nodes"]}
    wait_for(lambda: {e.get_attribute("data-node-id") for e in find(browser, "[data-node-id]")}
             == wanted, what="every node to be drawn")
    time.sleep(0.3)  # the fit-view's transition


def attribute(browser: WebDriver, css: str, name: str) -> str | None:
    """An attribute of the first element matching `css`, read in one step in the page (an
    element found first and read after could be redrawn in between)."""
    value = browser.execute_script(
        "const found = document.querySelector(arguments[0]);"
        "return found ? found.getAttribute(arguments[1]) : null;", css, name)
    return None if value is None else str(value)


def status(browser: WebDriver, node_id: str) -> str | None:
    return attribute(browser, f'[data-node-id="{node_id}"]', "data-status")


def screenshot(browser: WebDriver, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / f"{name}.png"))


def drop_from_palette(browser: WebDriver, node_type: str, x: float = 0.5, y: float = 0.8) -> None:
    """An HTML5 drag of ``node_type`` from the palette onto the canvas (``x``, ``y``: fractions of
    the pane), as the browser delivers it."""
    browser.execute_script(
        """
        const [type, fx, fy] = arguments;
        const item = document.querySelector(`[data-palette="${type}"]`);
        const pane = document.querySelector('.vue-flow__pane');
        const box = pane.getBoundingClientRect();
        const data = new DataTransfer();
        item.dispatchEvent(new DragEvent('dragstart', {dataTransfer: data, bubbles: true}));
        for (const kind of ['dragover', 'drop']) {
          pane.dispatchEvent(new DragEvent(kind, {dataTransfer: data, bubbles: true,
            clientX: box.left + box.width * fx, clientY: box.top + box.height * fy}));
        }
        """,
        node_type, x, y,
    )

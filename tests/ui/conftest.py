"""The canvas's browser tests share one server (API + canvas, the embedded model available) and
one headless Chromium."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver

from tests.support.browser import CHROMIUM_FLAGS, chromium, server


@pytest.fixture(scope="session")
def base_url(tmp_path_factory: pytest.TempPathFactory, embedded_model: Path) -> Iterator[str]:
    with server(tmp_path_factory.mktemp("web")) as url:
        yield url


@pytest.fixture(scope="session")
def browser() -> Iterator[WebDriver]:
    found = chromium()
    if found is None:
        pytest.fail("chromium and chromedriver are needed: run scripts/system-deps")
    options = webdriver.ChromeOptions()
    options.binary_location = found[0]
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(found[1]), options=options)
    driver.implicitly_wait(0)
    yield driver
    driver.quit()

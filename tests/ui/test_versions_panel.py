"""The versions panel: open a saved version read-only, diff two on the canvas (the changed node
marked, its changed param listed), restore one as a new version."""

from __future__ import annotations

import copy

import httpx
from selenium.webdriver.remote.webdriver import WebDriver

from tests.support.browser import create, example, find, open_editor, saved, wait_for


def click(browser: WebDriver, css: str) -> None:
    wait_for(lambda: find(browser, css), what=css)
    browser.execute_script("document.querySelector(arguments[0]).click()", css)


def test_open_diff_and_restore_versions(browser: WebDriver, base_url: str) -> None:
    first = example("greeting.json")
    workflow_id = create(base_url, first)
    second = copy.deepcopy(first)
    second["nodes"][1]["params"]["template"] = "Good morning, {{ name }}!"
    second["nodes"].append({"id": "extra", "type": "output", "params": {"name": "extra"},
                            "ui": {"x": 600, "y": 260}})
    second["edges"].append({"from": "greet.text", "to": "extra.value"})
    answer = httpx.put(f"{base_url}/api/workflows/{workflow_id}", json=second,
                       headers={"If-Match": '"1"'}, timeout=10)
    assert answer.status_code == 200, answer.text
    open_editor(browser, base_url, workflow_id)
    next(t for t in find(browser, ".q-tab") if t.text.strip().lower() == "versions").click()
    wait_for(lambda: find(browser, '[data-version="1"]'), what="the versions listed")
    wait_for(lambda: "(current)" in find(browser, '[data-version="2"]')[0].text,
             what="version 2 as the current one")

    click(browser, '[data-open-version="1"]')
    wait_for(lambda: "Version 1, read-only" in " ".join(
        e.text for e in find(browser, "[data-readonly]")), what="the read-only banner")
    wait_for(lambda: not find(browser, '[data-node-id="extra"]'), what="version 1 drawn")

    for version in (1, 2):
        click(browser, f'[data-tick-version="{version}"]')
    click(browser, "[data-diff-versions]")
    wait_for(lambda: find(browser, '[data-node-id="greet"][data-diff="changed"]'),
             what="the changed node marked")
    assert find(browser, '[data-node-id="extra"][data-diff="added"]')
    assert find(browser, '[data-edge="greet.text->extra.value"][data-diff="added"]')
    assert not find(browser, '[data-node-id="name"][data-diff]')
    listed = " ".join(e.text for e in find(browser, '[data-diff-param="greet"]'))
    assert "template" in listed
    assert "Good morning" in listed

    click(browser, '[data-restore-version="1"]')
    wait_for(lambda: saved(base_url, workflow_id)["version"] == 3, what="version 3")
    assert saved(base_url, workflow_id)["document"] == first
    wait_for(lambda: not find(browser, "[data-readonly]"), what="editing again")
    wait_for(lambda: not find(browser, '[data-node-id="extra"]'), what="version 1 back")
    assert "Hello" in find(browser, '[data-face="greet.template"]')[0].text

"""The evaluations page in the browser (SPEC §17): start an evaluation (a dataset picked, two
variants), follow it to its end, read the summary, the chart and each row's outputs side by
side."""

from __future__ import annotations

import json
from typing import Any

import httpx
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver

from tests.support.browser import create, find, wait_for

DOUBLING: dict[str, Any] = {
    "schema_version": 1,
    "name": "Doubling in the browser",
    "nodes": [
        {"id": "n", "type": "input", "params": {"name": "n", "schema": {"type": "integer"}}},
        {"id": "times", "type": "template", "params": {"template": "{{ n * 2 }}"}},
        {"id": "doubled", "type": "output", "params": {"name": "doubled"}},
    ],
    "edges": [
        {"from": "n.value", "to": "times.n"},
        {"from": "times.text", "to": "doubled.value"},
    ],
}
VARIANTS = [
    {"name": "current"},
    {"name": "triple", "params": {"times": {"template": "{{ n * 3 }}"}}},
]


def test_an_evaluation_started_and_read_in_the_page(browser: WebDriver, base_url: str) -> None:
    workflow_id = create(base_url, DOUBLING)
    rows = [{"inputs": {"n": n}, "expected": {"doubled": str(2 * n)}} for n in (1, 2, 3)]
    dataset = httpx.post(f"{base_url}/api/datasets", json={"name": "threes", "rows": rows}).json()
    browser.get(f"{base_url}/workflows/{workflow_id}/evaluations")

    wait_for(lambda: find(browser, "[data-eval-dataset]"), what="the form")[0].click()
    option = wait_for(lambda: [e for e in find(browser, ".q-menu .q-item")
                               if "threes" in e.text], what="the dataset in the list")[0]
    option.click()
    box = find(browser, "textarea[data-eval-variants]")[0]  # Quasar puts it on the textarea
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(json.dumps(VARIANTS))
    find(browser, "[data-eval-start]")[0].click()

    wait_for(lambda: find(browser, '[data-eval-status="done"]'), timeout=30, what="its end")
    wait_for(lambda: find(browser, "[data-eval-chart]"), what="the chart")
    summary = wait_for(lambda: [e for e in find(browser, "[data-eval-summary]")
                                if "triple" in e.text], what="the summary")[0]
    assert "100%" in summary.text  # current doubles: every row passes
    assert "0%" in summary.text  # triple: none
    assert "cost" in summary.text  # a column of its own (0 here: the workflow has no model)
    grid = find(browser, "[data-eval-rows]")[0]
    assert '"doubled": "9"' in grid.text or '"doubled":"9"' in grid.text
    links = grid.find_elements(By.CSS_SELECTOR, "a")
    assert len(links) == 3 * 2
    listed = httpx.get(f"{base_url}/api/evaluations", params={"workflow_id": workflow_id}).json()
    assert listed["items"][0]["dataset_id"] == dataset["id"]

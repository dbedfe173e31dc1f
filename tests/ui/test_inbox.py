"""Answering in the browser (SPEC §16): the header counts what waits, the Inbox page lists it with
a button per choice, and a run's page shows the form of its waiting node; an answer resumes the
run."""

from __future__ import annotations

from typing import Any

import httpx
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from tests.support.browser import create, find, wait_for

CHOOSING: dict[str, Any] = {
    "schema_version": 1,
    "name": "Choosing",
    "nodes": [
        {"id": "draft", "type": "input", "params": {"name": "draft", "default": "the memo"}},
        {"id": "ask", "type": "human_input",
         "params": {"prompt": "Send {{ context }}?", "choices": ["send", "keep"]}},
        {"id": "out", "type": "output", "params": {"name": "sent"}},
    ],
    "edges": [
        {"from": "draft.value", "to": "ask.context"},
        {"from": "ask.send", "to": "out.value"},
    ],
}
COUNTING: dict[str, Any] = {
    "schema_version": 1,
    "name": "Counting",
    "nodes": [
        {"id": "ask", "type": "human_input",
         "params": {"prompt": "How many?", "schema": {"type": "integer"}}},
        {"id": "out", "type": "output", "params": {"name": "count"}},
    ],
    "edges": [{"from": "ask.answer", "to": "out.value"}],
}


def waiting_run(base_url: str, document: dict[str, Any]) -> str:
    workflow_id = create(base_url, document)
    run = httpx.post(f"{base_url}/api/workflows/{workflow_id}/runs", json={"wait": True}).json()
    assert run["status"] == "waiting", run
    return str(run["id"])


def run_of(base_url: str, run_id: str) -> dict[str, Any]:
    return dict(httpx.get(f"{base_url}/api/runs/{run_id}").json())


def test_the_inbox_answers_a_choice(browser: WebDriver, base_url: str) -> None:
    run_id = waiting_run(base_url, CHOOSING)
    browser.get(f"{base_url}/inbox")
    item = wait_for(lambda: find(browser, f'[data-inbox-item="{run_id}"]'), what="the item")[0]
    assert "Send the memo?" in item.text
    assert "Choosing" in item.text
    count = wait_for(lambda: [e for e in find(browser, "[data-inbox-count]") if e.is_displayed()],
                     what="the header's count")[0]
    assert int(count.text) >= 1
    item.find_element(By.CSS_SELECTOR, '[data-choice="send"]').click()
    wait_for(lambda: run_of(base_url, run_id)["status"] == "succeeded", what="the run's end")
    assert run_of(base_url, run_id)["outputs"] == {"sent": "the memo"}
    wait_for(lambda: not find(browser, f'[data-inbox-item="{run_id}"]'), what="the item gone")


def test_a_run_page_answers_its_waiting_node(browser: WebDriver, base_url: str) -> None:
    run_id = waiting_run(base_url, COUNTING)
    browser.get(f"{base_url}/runs/{run_id}")
    form = wait_for(lambda: find(browser, f'[data-answer-form="{run_id}/ask"]'), what="the form")[0]
    assert "How many?" in form.text
    form.find_element(By.CSS_SELECTOR, "input").send_keys("12")
    form.find_element(By.CSS_SELECTOR, "[data-answer-send]").click()
    wait_for(lambda: run_of(base_url, run_id)["status"] == "succeeded", what="the run's end")
    assert run_of(base_url, run_id)["outputs"] == {"count": 12}
    wait_for(
        lambda: find(browser, "[data-run-status=succeeded]"), what="the page showing the end"
    )

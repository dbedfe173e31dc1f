"""A workflow's schedules and webhooks page in a real headless Chromium: a schedule added
(its next slot shown; a bad cron refused with the reason), a webhook made with its secret shown
once, and a run the webhook started listed with its trigger."""

from __future__ import annotations

import httpx
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver

from server.api.hooks import signature
from tests.support.browser import (
    button,
    click_when_free,
    create,
    example,
    find,
    open_editor,
    wait_for,
)


def test_schedules_and_webhooks_on_the_workflows_page(browser: WebDriver, base_url: str) -> None:
    workflow_id = create(base_url, example("greeting.json"))
    browser.get(f"{base_url}/")
    wait_for(lambda: find(browser, f'[data-triggers="{workflow_id}"]'), what="the link")[0].click()
    wait_for(lambda: browser.current_url.endswith(f"/workflows/{workflow_id}/triggers"),
             what="the triggers page")

    button(browser, "New schedule").click()
    cron = wait_for(lambda: [e for e in find(browser, "input")
                             if e.get_attribute("aria-label") == "cron"], what="the form")[0]
    cron.send_keys("61 * * * *")
    button(browser, "Add").click()
    wait_for(lambda: "out of range" in find(browser, "[data-schedule-error]")[0].text,
             what="the refusal")
    cron.send_keys(Keys.CONTROL, "a")
    cron.send_keys("0 9 * * *")
    button(browser, "Add").click()
    row = wait_for(lambda: find(browser, "[data-schedule]"), what="the schedule")[0]
    assert "0 9 * * *" in row.text
    assert "09:00:00" in row.find_element(By.CSS_SELECTOR, "[data-next-run]").text
    schedules = httpx.get(f"{base_url}/api/workflows/{workflow_id}/schedules").json()["items"]
    assert [item["cron"] for item in schedules] == ["0 9 * * *"]

    button(browser, "New webhook").click()
    secret_box = wait_for(lambda: [e for e in find(browser, ".q-dialog input")
                                   if (e.get_attribute("value") or "").startswith("whsec_")],
                          what="the secret")[0]
    secret = secret_box.get_attribute("value") or ""
    button(browser, "Close").click()
    hooks = httpx.get(f"{base_url}/api/workflows/{workflow_id}/hooks").json()["items"]
    assert len(hooks) == 1
    body = b'{"name": "browser"}'
    called = httpx.post(f"{base_url}{hooks[0]['url']}?wait=true", content=body,
                        headers={"X-Nodeloom-Signature": signature(secret, body)})
    assert called.status_code == 200, called.text
    browser.refresh()
    run = wait_for(lambda: find(browser, f'[data-run="{called.json()["id"]}"]'), what="the run")
    assert f"webhook:{hooks[0]['id']}" in run[0].text


def test_the_history_shows_and_filters_what_started_each_run(
    browser: WebDriver, base_url: str
) -> None:
    workflow_id = create(base_url, example("greeting.json"))
    hook = httpx.post(f"{base_url}/api/workflows/{workflow_id}/hooks").json()
    body = b"{}"
    by_hook = httpx.post(f"{base_url}{hook['url']}?wait=true", content=body,
                         headers={"X-Nodeloom-Signature": signature(hook["secret"], body)}).json()
    by_api = httpx.post(f"{base_url}/api/workflows/{workflow_id}/runs", json={"wait": True},
                        timeout=30).json()
    open_editor(browser, base_url, workflow_id)
    next(t for t in find(browser, ".q-tab") if t.text.strip().lower() == "history").click()

    def entries() -> list[str]:
        return [e.text for e in find(browser, ".q-tree__node-header-content")]

    def both() -> bool:  # this workflow's two runs (not a page shown before)
        shown = " ".join(entries())
        return by_hook["id"][-6:] in shown and by_api["id"][-6:] in shown

    wait_for(both, what="both runs in the tree")
    labels = entries()
    assert any(by_hook["id"][-6:] in text and f"webhook:{hook['id']}" in text for text in labels)
    assert any(by_api["id"][-6:] in text and "· api" in text for text in labels)
    click_when_free(lambda: find(browser, "[data-trigger-filter]")[0], what="the filter")
    click_when_free(
        lambda: next(e for e in find(browser, ".q-menu .q-item") if e.text == "webhook"),
        what="the filter's choices",
    )
    wait_for(lambda: len(entries()) == 1 and by_hook["id"][-6:] in entries()[0],
             what="only the webhook's run")

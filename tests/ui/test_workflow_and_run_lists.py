"""The workflows page says what each workflow is (description, node count, tags, last run),
searches and filters by tag, duplicates; the runs page lists every run, filtered and paged."""

from __future__ import annotations

import httpx
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver

from tests.support.browser import create, example, find, wait_for


def listed(browser: WebDriver) -> list[str]:
    return [str(e.get_attribute("data-workflow")) for e in find(browser, "[data-workflow]")]


def test_the_workflows_page_describes_searches_and_duplicates(
    browser: WebDriver, base_url: str
) -> None:
    marker = "zebracorn"  # a word no other test's workflow has
    tagged = example("greeting.json") | {"description": f"Greets a {marker} kindly",
                                          "tags": [f"{marker}-tag"]}
    first = create(base_url, tagged)
    plain = create(base_url, example("greeting.json") | {"name": f"Plain {marker}"})
    run = httpx.post(f"{base_url}/api/workflows/{first}/runs", json={"wait": True},
                     timeout=30).json()
    browser.get(base_url + "/")
    row = wait_for(lambda: find(browser, f'[data-workflow="{first}"]'), what="the row")[0]
    assert f"Greets a {marker}" in row.text
    assert "3 nodes" in row.text
    assert find(browser, f'[data-workflow="{first}"] [data-tag="{marker}-tag"]')
    last = find(browser, f'[data-workflow="{first}"] [data-last-run]')[0]
    assert last.get_attribute("data-last-run") == "succeeded"
    assert str(last.get_attribute("href")).endswith(f"/runs/{run['id']}")
    search = find(browser, "input[data-workflow-search], [data-workflow-search] input")[0]
    search.send_keys(marker)
    wait_for(lambda: set(listed(browser)) == {first, plain}, what="the search's two")
    search.send_keys(Keys.CONTROL, "a")
    search.send_keys(f"KINDLY {marker}")
    wait_for(lambda: listed(browser) == [first], what="the description's match")
    search.send_keys(Keys.CONTROL, "a", Keys.BACKSPACE)
    find(browser, "[data-tag-filter]")[0].click()
    wait_for(lambda: [e for e in find(browser, ".q-item") if e.text == f"{marker}-tag"],
             what="the tag's choice")[0].click()
    wait_for(lambda: listed(browser) == [first], what="the tag filter")
    browser.get(base_url + "/")
    wait_for(lambda: find(browser, f'[data-workflow="{plain}"]'), what="the list")
    browser.execute_script(
        "document.querySelector(arguments[0]).querySelectorAll('button').forEach((b) =>"
        " { if (b.innerText.trim().toLowerCase() === 'duplicate') b.click(); })",
        f'[data-workflow="{plain}"]')
    names = lambda: [w["name"] for w in httpx.get(  # noqa: E731
        f"{base_url}/api/workflows", params={"q": marker}).json()["items"]]
    wait_for(lambda: f"Plain {marker} (copy)" in names(), what="the duplicate")


def test_the_runs_page_filters_and_pages(browser: WebDriver, base_url: str) -> None:
    workflow_id = create(base_url, example("greeting.json") | {"name": "Runs listed"})
    made = [httpx.post(f"{base_url}/api/workflows/{workflow_id}/runs", json={"wait": True},
                       timeout=30).json()["id"] for _ in range(27)]
    browser.get(base_url + "/runs")
    wait_for(lambda: find(browser, "[data-run-row]"), what="the runs")

    def choose(name: str, text: str) -> None:
        field = browser.execute_script(
            "return document.querySelector(arguments[0]).closest('.q-field')",
            f"[data-runs-{name}]")
        ActionChains(browser).click(field).perform()
        wait_for(lambda: [e for e in find(browser, ".q-item") if e.text == text],
                 what=f"the choice {text}")[0].click()

    def press(name: str) -> None:
        browser.execute_script("document.querySelector(arguments[0]).click()",
                               f"[data-runs-{name}]")

    choose("workflow", "Runs listed")

    def rows() -> list[str]:
        return [str(e.get_attribute("data-run-row")) for e in find(browser, "[data-run-row]")]

    wait_for(lambda: rows() == made[::-1][:25], what="the newest 25 of the workflow")
    press("next")
    wait_for(lambda: rows() == made[::-1][25:], what="the second page")
    press("previous")
    wait_for(lambda: rows() == made[::-1][:25], what="the first page again")
    choose("status", "failed")
    wait_for(lambda: rows() == [], what="no failed run")

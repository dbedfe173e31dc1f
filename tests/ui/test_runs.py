"""Runs in the canvas: a run's own page (finished, and following one live), reached from the
history panel; the diff of two runs; Cancel of a run that is generating."""

from __future__ import annotations

from typing import Any

import httpx
from selenium.webdriver.remote.webdriver import WebDriver

from tests.support.bodies import shout_each
from tests.support.browser import (
    attribute,
    button,
    click_when_free,
    create,
    example,
    find,
    open_editor,
    status,
    wait_for,
)

SLOW: dict[str, Any] = {  # an LLM node that would write for a minute or more
    "schema_version": 1, "name": "Slow",
    "nodes": [
        {"id": "ask", "type": "input",
         "params": {"name": "ask", "schema": {"type": "string"}, "default": "1, 2, 3,"},
         "ui": {"x": 40, "y": 60}},
        {"id": "write", "type": "llm",
         "params": {"model": "gemma-3-270m", "max_tokens": 4000, "temperature": 0},
         "ui": {"x": 320, "y": 60}},
        {"id": "out", "type": "output", "params": {"name": "out"}, "ui": {"x": 600, "y": 60}},
    ],
    "edges": [{"from": "ask.value", "to": "write.prompt"},
              {"from": "write.text", "to": "out.value"}],
}


def run_now(base_url: str, workflow_id: str, **body: Any) -> dict[str, Any]:
    answer = httpx.post(f"{base_url}/api/workflows/{workflow_id}/runs", json=body, timeout=60)
    assert answer.status_code in (201, 202), answer.text
    return dict(answer.json())


def run_status(browser: WebDriver) -> str | None:
    return attribute(browser, "[data-run-status]", "data-run-status")


def row_status(browser: WebDriver, node_id: str) -> str | None:
    return attribute(browser, f'[data-run-node="{node_id}"]', "data-status")


def history_tab(browser: WebDriver) -> None:
    next(t for t in find(browser, ".q-tab") if t.text.strip().lower() == "history").click()


def tree_entry(browser: WebDriver, run_id: str) -> Any:
    return wait_for(lambda: [e for e in find(browser, ".q-tree__node-header")
                             if run_id[-6:] in e.text], what=f"run {run_id} in the tree")[0]


def test_a_run_page_from_the_history_panel(browser: WebDriver, base_url: str) -> None:
    workflow_id = create(base_url, example("greeting.json"))
    run = run_now(base_url, workflow_id, wait=True)
    child = httpx.post(f"{base_url}/api/runs/{run['id']}/rerun", timeout=60, json={
        "from_node": "greet", "params": {"greet": {"template": "Hi, {{ name }}."}}, "wait": True,
    }).json()
    open_editor(browser, base_url, workflow_id)
    history_tab(browser)
    tree_entry(browser, child["id"]).find_element("css selector",
                                                  ".q-tree__node-header-content").click()
    link = wait_for(lambda: [e for e in find(browser, "[data-run-link]") if e.is_displayed()],
                    what="the link to the run's page")[0]
    link.click()

    wait_for(lambda: browser.current_url.endswith(f"/runs/{child['id']}"), what="the run page")
    wait_for(lambda: run_status(browser) == "succeeded", what="the run's status")
    wait_for(lambda: row_status(browser, "name") == "cached", what="the reused node")
    assert row_status(browser, "greet") == "succeeded"
    greet = find(browser, '[data-run-node="greet"]')[0].text
    assert "Hi, world." in greet
    assert " ms" in greet
    assert "Hi, world." in find(browser, '[data-output="greeting"]')[0].text
    assert '"world"' in find(browser, "[data-run-inputs]")[0].text  # the input's default
    assert find(browser, "[data-workflow-link]")[0].get_attribute("href").endswith(
        f"/workflows/{workflow_id}"
    )
    find(browser, "[data-parent-link]")[0].click()
    wait_for(lambda: browser.current_url.endswith(f"/runs/{run['id']}"), what="the parent's page")
    wait_for(lambda: find(browser, "[data-child-link]"), what="the link to the rerun")
    assert "Hello, world!" in find(browser, '[data-output="greeting"]')[0].text


def test_the_diff_of_two_runs(browser: WebDriver, base_url: str) -> None:
    workflow_id = create(base_url, example("greeting.json"))
    first = run_now(base_url, workflow_id, wait=True)
    second = run_now(base_url, workflow_id, wait=True, inputs={"name": "bees"})
    open_editor(browser, base_url, workflow_id)
    history_tab(browser)
    for run in (first, second):
        click_when_free(
            lambda run=run: tree_entry(browser, run["id"]).find_element(
                "css selector", ".q-checkbox"
            ),
            what=f"the tick box of run {run['id']}",
        )
    wait_for(lambda: len(find(browser, '.q-tree .q-checkbox[aria-checked="true"]')) == 2,
             what="both runs ticked")
    button(browser, "Diff ticked").click()
    dialog = wait_for(lambda: [d for d in find(browser, ".q-dialog") if "→" in d.text],
                      what="the diff dialog")[0]
    assert 'inputs changed: ["name"]' in dialog.text
    rows = {row.find_elements("css selector", "td")[0].text: row.text
            for row in dialog.find_elements("css selector", "tbody tr")}
    assert set(rows) == {"name", "greet", "greeting"}
    assert "changed" in rows["greet"]  # its output: "Hello, bees! …" instead of "Hello, world! …"
    button(browser, "Close").click()


def test_a_running_run_is_followed_live_and_cancelled(browser: WebDriver, base_url: str) -> None:
    workflow_id = create(base_url, SLOW)
    # The editor: Run, watch the LLM write, Cancel.
    open_editor(browser, base_url, workflow_id)
    button(browser, "Run").click()
    button(browser, "Start").click()
    wait_for(lambda: status(browser, "write") == "running", timeout=60, what="the LLM to start")
    wait_for(lambda: any(len(e.text) > 10
                         for e in find(browser, '[data-node-id="write"] .nl-text')),
             timeout=60, what="tokens on the node")
    button(browser, "Cancel").click()
    wait_for(lambda: run_status(browser) == "cancelled", timeout=30, what="the cancelled status")
    assert status(browser, "write") != "running"
    run_id = httpx.get(f"{base_url}/api/runs", params={"workflow_id": workflow_id}).json()[
        "items"][0]["id"]
    assert httpx.get(f"{base_url}/api/runs/{run_id}").json()["status"] == "cancelled"

    # The run page of a run that is going on: the tokens arrive live, the end is shown.
    run = run_now(base_url, workflow_id)
    browser.get(f"{base_url}/runs/{run['id']}")
    wait_for(lambda: row_status(browser, "write") == "running", timeout=60, what="running")
    wait_for(lambda: len(find(browser, '[data-run-node="write"]')[0].text) > 40, timeout=60,
             what="streamed tokens on the run page")
    assert run_status(browser) == "running"
    httpx.post(f"{base_url}/api/runs/{run['id']}/cancel", timeout=30)
    wait_for(lambda: run_status(browser) == "cancelled", timeout=30, what="the end of the run")
    assert row_status(browser, "write") == "cancelled"


def test_a_run_page_lists_the_nodes_inside_a_map_by_item(browser: WebDriver, base_url: str) -> None:
    document = shout_each(["a", 7], on_item_error="null")
    run = run_now(base_url, create(base_url, document), wait=True)
    browser.get(f"{base_url}/runs/{run['id']}")
    wait_for(lambda: run_status(browser) == "succeeded", what="the run's status")
    folds = wait_for(lambda: find(browser, '[data-run-body="m"]'), what="the map's items")
    assert "m: 2 items" in folds[0].text
    folds[0].click()  # opened, its items show
    def shown() -> dict[str, str] | None:
        found = {e.get_attribute("data-run-instance"): e.text
                 for e in find(browser, "[data-run-instance]") if e.text}
        return found if len(found) == 2 else None

    instances = wait_for(shown, what="both items")
    assert set(instances) == {"m[0]", "m[1]"}
    assert "(failed)" in instances["m[1]"]
    find(browser, '[data-run-instance="m[0]"]')[0].click()
    wait_for(lambda: row_status(browser, "m[0]/up") == "succeeded", what="item 0's nodes")
    wait_for(lambda: '"A"' in find(browser, '[data-run-node="m[0]/up"]')[0].text,
             what="item 0's output, shown")


def test_the_run_tree_is_drawn_and_ticked_runs_compare_side_by_side(
    browser: WebDriver, base_url: str
) -> None:
    workflow_id = create(base_url, example("greeting.json"))
    first = run_now(base_url, workflow_id, wait=True)
    child = httpx.post(f"{base_url}/api/runs/{first['id']}/rerun", json={
        "from_node": "greet", "params": {"greet": {"template": "Bye, {{ name }}!"}},
        "wait": True}, timeout=30).json()
    other = run_now(base_url, workflow_id, wait=True)  # same inputs: the same output
    open_editor(browser, base_url, workflow_id)
    history_tab(browser)
    boxes = wait_for(lambda: find(browser, f'[data-run-node="{child["id"]}"]'),
                     what="the rerun in the tree graph")
    wait_for(lambda: "greet.template" in find(browser, f'[data-run-node="{child["id"]}"]')[0].text,
             what="what the rerun changed")
    parent_box = find(browser, f'[data-run-node="{first["id"]}"]')[0]
    assert parent_box.rect["x"] < boxes[0].rect["x"]  # the child to its parent's right
    boxes[0].click()
    wait_for(lambda: "Bye, world!" in " ".join(
        e.text for e in find(browser, '[data-node-id="greet"]')), what="the picked run's values")
    for run in (first, child, other):
        click_when_free(
            lambda run=run: tree_entry(browser, run["id"]).find_element(
                "css selector", ".q-checkbox"
            ),
            what=f"the tick box of run {run['id']}",
        )
    button(browser, "Compare ticked").click()
    wait_for(lambda: find(browser, "[data-compare]"), what="the compare view")
    assert len(find(browser, "[data-compare-run]")) == 3
    differing = find(browser, f'[data-cell="{child["id"]}|output greeting"]')[0]
    assert differing.get_attribute("data-differs") is not None
    assert "Bye, world!" in differing.text
    same = find(browser, f'[data-cell="{child["id"]}|name.value"]')[0]
    assert same.get_attribute("data-differs") is None
    button(browser, "Close").click()

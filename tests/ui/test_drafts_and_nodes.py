"""A canvas one can live in: a half-built workflow saves (its issues marked) and its run is
refused saying why; nodes show their key params without opening the form."""

from __future__ import annotations

from selenium.webdriver.remote.webdriver import WebDriver

from tests.support.browser import (
    button,
    create,
    drop_from_palette,
    example,
    find,
    open_editor,
    saved,
    wait_for,
)


def notices(browser: WebDriver, text: str) -> list[str]:
    return [e.text for e in find(browser, ".q-notification") if text in e.text]


def test_a_draft_saves_with_its_issue_marked_and_its_run_is_refused(
    browser: WebDriver, base_url: str
) -> None:
    workflow_id = create(base_url, example("greeting.json"))
    open_editor(browser, base_url, workflow_id)
    drop_from_palette(browser, "output")  # output_1.value: a required input with no edge
    wait_for(lambda: find(browser, '[data-node-id="output_1"]'), what="the dropped node")
    button(browser, "Save").click()
    wait_for(lambda: saved(base_url, workflow_id)["version"] == 2, what="the draft saved")
    port = wait_for(lambda: find(browser, '[data-port="output_1.value"].nl-port-error'),
                    what="the issue marked on its port")[0]
    assert "needs an edge" in str(port.get_attribute("title"))
    assert wait_for(lambda: notices(browser, "with issues"), what="the save's notice")
    button(browser, "Run").click()
    refusal = wait_for(lambda: notices(browser, "Not run"), what="the run refused")[0]
    assert "1 issue(s)" in refusal
    assert "output_1" in refusal
    runs = browser.execute_script(
        "return fetch(arguments[0]).then((r) => r.json())",
        f"/api/runs?workflow_id={workflow_id}",
    )
    assert runs["items"] == []

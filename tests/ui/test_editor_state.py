"""The editor keeps its state and says what is wrong where: the selection and the open panel come
back after a reload; Validate rings the port an error names and flags the params field; several
nodes are selected and deleted at once; a refused save loses nothing typed."""

from __future__ import annotations

import httpx
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.keys import Keys
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


def active_tab(browser: WebDriver) -> str:
    return " ".join(e.text for e in find(browser, ".q-tab--active")).strip().lower()


def test_selection_and_open_panel_are_restored_after_a_reload(
    browser: WebDriver, base_url: str
) -> None:
    workflow_id = create(base_url, example("greeting.json"))
    open_editor(browser, base_url, workflow_id)
    find(browser, '[data-node-id="greet"]')[0].click()
    wait_for(lambda: find(browser, 'textarea[data-param="template"]'), what="the params form")
    next(tab for tab in find(browser, ".q-tab") if tab.text.strip().lower() == "history").click()
    wait_for(lambda: (view := httpx.get(f"{base_url}/api/workflows/{workflow_id}/view").json())
             ["selection"] == ["greet"] and view["panels"] == ["history"],
             what="the view state to be saved")

    open_editor(browser, base_url, workflow_id)
    wait_for(lambda: "selected" in str(
        find(browser, '.vue-flow__node:has([data-node-id="greet"])')[0].get_attribute("class")
    ), what="the node selected again")
    assert active_tab(browser) == "history"
    assert button(browser, "Refresh").is_displayed()  # the history panel's own button
    # The params panel behind it was built for the restored selection.
    next(tab for tab in find(browser, ".q-tab") if tab.text.strip().lower() == "params").click()
    wait_for(lambda: find(browser, 'textarea[data-param="template"]'), what="greet's params")


def test_validate_marks_the_port_and_the_params_field(browser: WebDriver, base_url: str) -> None:
    workflow_id = create(base_url, example("greeting.json"))
    open_editor(browser, base_url, workflow_id)
    drop_from_palette(browser, "output")  # output_1.value: a required input with no edge
    wait_for(lambda: find(browser, '[data-node-id="output_1"]'), what="the dropped node")
    find(browser, '[data-node-id="greet"]')[0].click()
    area = wait_for(lambda: find(browser, 'textarea[data-param="template"]'), what="the form")[0]
    area.clear()
    area.send_keys("Hello, {{ name ")  # a template syntax error
    button(browser, "Validate").click()

    port = wait_for(lambda: find(browser, '[data-port="output_1.value"].nl-port-error'),
                    what="the port's error ring")[0]
    assert "needs an edge" in str(port.get_attribute("title"))
    assert not find(browser, '[data-port="greet.text"].nl-port-error')
    message = wait_for(lambda: browser.execute_script(
        "const box = document.querySelector('textarea[data-param=\"template\"]')"
        "?.closest('.q-field');"
        "return box && box.classList.contains('q-field--error') && box.innerText;"
    ), what="the template field's error")
    assert "unexpected end of template" in message
    assert "nl-invalid" in str(find(browser, '[data-node-id="greet"]')[0].get_attribute("class"))


def test_shift_click_selects_several_nodes_and_delete_removes_them(
    browser: WebDriver, base_url: str
) -> None:
    workflow_id = create(base_url, example("greeting.json"))
    open_editor(browser, base_url, workflow_id)
    greet, greeting = (find(browser, f'[data-node-id="{n}"]')[0] for n in ("greet", "greeting"))
    ActionChains(browser).click(greet).key_down(Keys.SHIFT).click(greeting).key_up(
        Keys.SHIFT
    ).perform()
    wait_for(lambda: len(find(browser, ".vue-flow__node.selected")) == 2, what="two selected")
    ActionChains(browser).send_keys(Keys.DELETE).perform()
    wait_for(lambda: drawn(browser) == {"name"}, what="both nodes deleted")
    assert not find(browser, "[data-edge]")
    ActionChains(browser).key_down(Keys.CONTROL).send_keys("z").key_up(Keys.CONTROL).perform()
    wait_for(lambda: drawn(browser) == {"name", "greet", "greeting"}, what="one undo")
    wait_for(lambda: len(find(browser, "[data-edge]")) == 2, what="the edges back")


def test_a_refused_save_keeps_what_was_typed(browser: WebDriver, base_url: str) -> None:
    workflow_id = create(base_url, example("greeting.json"))
    open_editor(browser, base_url, workflow_id)
    record = saved(base_url, workflow_id)  # someone else saves meanwhile
    answer = httpx.put(f"{base_url}/api/workflows/{workflow_id}", json=record["document"],
                       headers={"If-Match": '"1"'}, timeout=10)
    assert answer.status_code == 200, answer.text
    find(browser, '[data-node-id="greet"]')[0].click()
    area = wait_for(lambda: find(browser, 'textarea[data-param="template"]'), what="the form")[0]
    area.send_keys(" Typed here.")
    button(browser, "Save").click()
    wait_for(lambda: any("saved this workflow meanwhile" in e.text
                         for e in find(browser, ".q-notification")), what="the conflict")
    assert area.get_attribute("value").endswith("Welcome to nodeloom. Typed here.")
    assert saved(base_url, workflow_id)["version"] == 2  # theirs, not ours
    next(tab for tab in find(browser, ".q-tab") if tab.text.strip().lower() == "history").click()
    next(tab for tab in find(browser, ".q-tab") if tab.text.strip().lower() == "params").click()
    area = wait_for(lambda: find(browser, 'textarea[data-param="template"]'), what="the form")[0]
    assert area.get_attribute("value").endswith(" Typed here.")  # kept in the editor's document


def drawn(browser: WebDriver) -> set[str]:
    return set(browser.execute_script(
        "return [...document.querySelectorAll('[data-node-id]')].map(e => e.dataset.nodeId)"
    ))

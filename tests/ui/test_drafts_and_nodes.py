"""A canvas one can live in: a half-built workflow saves (its issues marked) and its run is
refused saying why; nodes show their key params, the main one edited in place; a large graph
opens readable; quick add by double-click, by `/` and by dropping an edge; sticky notes."""

from __future__ import annotations

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
    screenshot,
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
    open_editor(browser, base_url, workflow_id)  # opened again, the draft shows its issue
    wait_for(lambda: find(browser, '[data-port="output_1.value"].nl-port-error'),
             what="the issue marked on opening")


def zoom(browser: WebDriver) -> float:
    return float(browser.execute_script(
        "const t = document.querySelector('.vue-flow__transformationpane').style.transform;"
        "return Number(t.match(/scale\\(([^)]+)\\)/)[1]);"))


def test_a_node_shows_its_key_params_and_edits_the_main_one_in_place(
    browser: WebDriver, base_url: str
) -> None:
    workflow_id = create(base_url, example("greeting.json"))
    open_editor(browser, base_url, workflow_id)
    face = find(browser, '[data-face="greet.template"]')[0]
    assert "Hello, {{ name }}!" in face.text  # without opening the form
    assert "world" in find(browser, '[data-face="name.default"]')[0].text
    node = find(browser, '[data-node-id="greet"]')[0]
    assert node.get_attribute("data-category") == "text"
    # Node text stays at least 12 px on screen at the default view.
    size = float(browser.execute_script(
        "return parseFloat(getComputedStyle(arguments[0]).fontSize)", face))
    assert size * zoom(browser) >= 12
    ActionChains(browser).double_click(face).perform()
    area = wait_for(lambda: find(browser, 'textarea[data-edit="greet"]'), what="the editor")[0]
    area.send_keys(Keys.CONTROL, "a")
    area.send_keys("Hi {{ name }}, {{ mood }}")
    area.send_keys(Keys.CONTROL, Keys.ENTER)
    wait_for(lambda: "Hi {{ name }}" in find(browser, '[data-face="greet.template"]')[0].text,
             what="the edited text on the node")
    wait_for(lambda: find(browser, '[data-port="greet.mood"]'), what="the template's new port")
    button(browser, "Save").click()
    wait_for(lambda: saved(base_url, workflow_id)["document"]["nodes"][1]["params"]
             == {"template": "Hi {{ name }}, {{ mood }}"}, what="the edit saved")


def test_a_large_graph_opens_readable_from_its_corner(browser: WebDriver, base_url: str) -> None:
    nodes = [{"id": f"t{i}", "type": "template", "params": {"template": f"step {i}"},
              "ui": {"x": (i % 10) * 260, "y": (i // 10) * 140}} for i in range(80)]
    workflow_id = create(base_url, {"schema_version": 1, "name": "Wide", "nodes": nodes})
    open_editor(browser, base_url, workflow_id)
    wait_for(lambda: zoom(browser) >= 0.95, what="a readable zoom")
    corner = find(browser, '[data-node-id="t0"]')[0].rect
    pane = find(browser, ".vue-flow__pane")[0].rect
    assert pane["x"] <= corner["x"] <= pane["x"] + 100
    assert pane["y"] <= corner["y"] <= pane["y"] + 100
    colours = browser.execute_script(
        "return [...document.querySelectorAll('.vue-flow__minimap-node')]"
        ".map((e) => e.getAttribute('fill'))")
    assert set(colours) == {"#0891b2"}  # the minimap in the templates' colour


def test_quick_add_by_double_click_and_by_dropping_an_edge(
    browser: WebDriver, base_url: str
) -> None:
    workflow_id = create(base_url, example("greeting.json"))
    open_editor(browser, base_url, workflow_id)
    pane = find(browser, ".vue-flow__pane")[0]
    box = pane.rect
    ActionChains(browser).move_to_element_with_offset(
        pane, box["width"] // 2 - 60, -box["height"] // 2 + 20).double_click().perform()
    search = wait_for(lambda: find(browser, "[data-quick-search]"), what="quick add")[0]
    screenshot(browser, "quick-add")
    search.send_keys("condit")
    assert [e.get_attribute("data-quick-type") for e in find(browser, "[data-quick-type]")] == [
        "condition"]
    search.send_keys(Keys.ENTER)
    wait_for(lambda: find(browser, '[data-node-id="condition_1"]'), what="the added node")
    assert not find(browser, "[data-quick-add]")
    # A port dropped on empty canvas: only types that take a string, added connected.
    source = find(browser, '[data-port="greet.text"]')[0]
    ActionChains(browser).click_and_hold(source).move_to_element_with_offset(
        pane, 0, box["height"] // 2 - 30).pause(0.2).release().perform()
    wait_for(lambda: find(browser, "[data-quick-search]"), what="quick add from the port")
    offered = {e.get_attribute("data-quick-type") for e in find(browser, "[data-quick-type]")}
    assert {"output", "llm", "template"} <= offered
    assert "#note" not in offered
    find(browser, '[data-quick-type="output"]')[0].click()
    wait_for(lambda: find(browser, '[data-edge="greet.text->output_1.value"]'),
             what="the new node connected")
    # `?` shows the shortcuts; a sticky note from quick add, written in place.
    ActionChains(browser).move_to_element(pane).click().perform()
    ActionChains(browser).send_keys("?").perform()
    assert "quick add" not in wait_for(lambda: find(browser, "[data-shortcuts]"))[0].text.lower()
    ActionChains(browser).send_keys(Keys.ESCAPE).send_keys("/").perform()
    search = wait_for(lambda: find(browser, "[data-quick-search]"), what="quick add by /")[0]
    search.send_keys("sticky", Keys.ENTER)
    note = wait_for(lambda: find(browser, '[data-note-id="note1"]'), what="the note")[0]
    ActionChains(browser).double_click(note).perform()
    area = wait_for(lambda: find(browser, '[data-note-id="note1"] textarea'))[0]
    area.send_keys("**Check** the tone", Keys.CONTROL, Keys.ENTER)
    wait_for(lambda: find(browser, '[data-note-id="note1"] strong'), what="the Markdown drawn")
    button(browser, "Save").click()
    document = wait_for(lambda: (d := saved(base_url, workflow_id))["version"] == 2
                        and d["document"], what="version 2")
    assert document["ui"]["notes"][0]["text"] == "**Check** the tone"
    assert {"from": "greet.text", "to": "output_1.value"} in document["edges"]

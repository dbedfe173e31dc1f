"""The canvas in a real headless Chromium against a real server: open an example, drag a node
from the palette, connect ports with the mouse, get refused on a type mismatch, edit a param,
save, run with the embedded model and watch states and streamed text, rerun from a node, and
find the view restored after a reload. Screenshots go to tests/artifacts/."""

from __future__ import annotations

import time
from typing import Any

import httpx
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver

from tests.support.bodies import shout_each
from tests.support.browser import (
    button,
    create,
    example,
    find,
    open_editor,
    saved,
    screenshot,
    status,
    wait_for,
)


def test_the_editor_draws_an_example(browser: WebDriver, base_url: str) -> None:
    workflow_id = create(base_url, example("triage.json"))
    open_editor(browser, base_url, workflow_id)
    document = example("triage.json")
    drawn = {e.get_attribute("data-node-id") for e in find(browser, "[data-node-id]")}
    assert drawn == {node["id"] for node in document["nodes"]}
    edges = {e.get_attribute("data-edge") for e in find(browser, "[data-edge]")}
    assert edges == {f"{edge['from']}->{edge['to']}" for edge in document["edges"]}
    assert find(browser, '[data-port="is_urgent.true"]')
    assert {b.text.strip().lower() for b in find(browser, "button")} >= {"save", "validate", "run"}
    screenshot(browser, "editor")


def test_drag_from_the_palette_connect_and_save(browser: WebDriver, base_url: str) -> None:
    workflow_id = create(base_url, example("greeting.json"))
    open_editor(browser, base_url, workflow_id)
    # An HTML5 drag from the palette onto the canvas, as the browser delivers it.
    browser.execute_script(
        """
        const item = document.querySelector('[data-palette="output"]');
        const pane = document.querySelector('.vue-flow__pane');
        const box = pane.getBoundingClientRect();
        const data = new DataTransfer();
        item.dispatchEvent(new DragEvent('dragstart', {dataTransfer: data, bubbles: true}));
        for (const type of ['dragover', 'drop']) {
          pane.dispatchEvent(new DragEvent(type, {dataTransfer: data, bubbles: true,
            clientX: box.left + box.width * 0.5, clientY: box.top + box.height * 0.8}));
        }
        """
    )
    wait_for(lambda: find(browser, '[data-node-id="output_1"]'), what="the dropped node")
    # A real mouse drag from greet.text to the new node's value port.
    source = find(browser, '[data-port="greet.text"]')[0]
    target = wait_for(lambda: find(browser, '[data-port="output_1.value"]'))[0]
    ActionChains(browser).click_and_hold(source).move_to_element(target).pause(0.2).release(
        target
    ).perform()
    wait_for(lambda: find(browser, '[data-edge="greet.text->output_1.value"]'), what="the edge")
    button(browser, "Save").click()
    document = wait_for(
        lambda: (d := saved(base_url, workflow_id))["version"] == 2 and d["document"],
        what="version 2",
    )
    assert {"from": "greet.text", "to": "output_1.value"} in document["edges"]
    assert any(node["id"] == "output_1" and node["type"] == "output" for node in document["nodes"])


def test_an_incompatible_connection_is_refused_visibly(
    browser: WebDriver, base_url: str
) -> None:
    def node(node_id: str, kind: str, params: dict[str, Any], x: int, y: int) -> dict[str, Any]:
        return {"id": node_id, "type": kind, "params": params, "ui": {"x": x, "y": y}}

    document = {
        "schema_version": 1, "name": "Mismatch",
        "nodes": [
            node("text", "input", {"name": "text", "schema": {"type": "string"}}, 40, 40),
            node("shown", "output", {"name": "shown"}, 360, 40),
            node("args", "input", {"name": "args", "schema": {"type": "object"}}, 40, 200),
            node("calc", "tool", {"tool": "calculator"}, 360, 200),
        ],
        "edges": [{"from": "text.value", "to": "shown.value"},
                  {"from": "args.value", "to": "calc.args"}],
    }
    workflow_id = create(base_url, document)
    open_editor(browser, base_url, workflow_id)
    source = find(browser, '[data-port="text.value"]')[0]
    target = find(browser, '[data-port="calc.args"]')[0]
    ActionChains(browser).click_and_hold(source).move_to_element(target).pause(0.2).release(
        target
    ).perform()
    notice = wait_for(
        lambda: [e for e in find(browser, ".q-notification") if "Cannot connect" in e.text],
        what="the refusal notice",
    )
    assert "string cannot go into object" in notice[0].text
    assert not find(browser, '[data-edge="text.value->calc.args"]')
    assert len(find(browser, "[data-edge]")) == 2


def test_edit_a_param_run_and_see_tokens_stream(browser: WebDriver, base_url: str) -> None:
    workflow_id = create(base_url, example("quiz.json"))
    open_editor(browser, base_url, workflow_id)
    find(browser, '[data-node-id="question"]')[0].click()
    area = wait_for(lambda: find(browser, 'textarea[data-param="description"]'), what="the form")[0]
    area.send_keys(" Asked from the canvas.")
    button(browser, "Save").click()
    wait_for(lambda: saved(base_url, workflow_id)["version"] == 2, what="the saved param")
    question = saved(base_url, workflow_id)["document"]["nodes"][0]
    assert question["params"]["description"].endswith(" Asked from the canvas.")
    button(browser, "Run").click()
    button(browser, "Start").click()
    wait_for(lambda: all(status(browser, n) == "succeeded"
                         for n in ("question", "prompt", "answer", "tidy", "result")),
             timeout=60, what="every node to succeed")
    streamed = find(browser, '[data-node-id="answer"] .nl-text')[0].text
    assert streamed.strip()
    output = wait_for(lambda: find(browser, '[data-output="answer"]'), what="the output panel")
    assert output[0].text.strip()
    screenshot(browser, "run")


def test_rerun_from_a_node_marks_reused_nodes(browser: WebDriver, base_url: str) -> None:
    workflow_id = create(base_url, example("greeting.json"))
    run = httpx.post(f"{base_url}/api/workflows/{workflow_id}/runs",
                     json={"wait": True}, timeout=30).json()
    assert run["status"] == "succeeded"
    open_editor(browser, base_url, workflow_id)
    find(browser, ".q-tab")[2].click()  # History
    entry = wait_for(lambda: [e for e in find(browser, ".q-tree__node-header-content")
                              if run["id"][-6:] in e.text], what="the run in the tree")
    entry[0].click()
    wait_for(lambda: status(browser, "greet") == "succeeded", what="the run's states")
    find(browser, '[data-node-id="greet"]')[0].click()
    button(browser, "Rerun from node").click()
    button(browser, "Rerun").click()
    wait_for(lambda: status(browser, "greeting") == "succeeded" and status(browser, "name")
             == "cached", timeout=30, what="the rerun")
    node = find(browser, '[data-node-id="name"]')[0]
    assert node.get_attribute("title").startswith("reused from run ")
    screenshot(browser, "run-tree")


def test_zoom_and_pan_are_restored_after_a_reload(browser: WebDriver, base_url: str) -> None:
    workflow_id = create(base_url, example("greeting.json"))
    open_editor(browser, base_url, workflow_id)
    for _ in range(2):
        find(browser, ".vue-flow__controls-zoomin")[0].click()
        time.sleep(0.3)
    transform = settled_transform(browser)
    zoom = float(transform.split("scale(")[1].rstrip(");"))
    wait_for(lambda: abs(httpx.get(f"{base_url}/api/workflows/{workflow_id}/view").json()["zoom"]
                         - zoom) < 1e-3, what="the view state to be saved")
    open_editor(browser, base_url, workflow_id)
    assert settled_transform(browser) == transform


def settled_transform(browser: WebDriver) -> str:
    """The canvas's transform once it stopped changing (zooming animates)."""
    def read() -> str:
        return str(find(browser, ".vue-flow__transformationpane")[0].get_attribute("style"))

    last = read()
    while True:
        time.sleep(0.4)
        now = read()
        if now == last:
            return now
        last = now


def test_a_template_edit_brings_its_new_port(browser: WebDriver, base_url: str) -> None:
    workflow_id = create(base_url, example("greeting.json"))
    open_editor(browser, base_url, workflow_id)
    find(browser, '[data-node-id="greet"]')[0].click()
    area = wait_for(lambda: find(browser, 'textarea[data-param="template"]'), what="the form")[0]
    area.clear()
    area.send_keys("Hello, {{ name }} from {{ place }}!")
    port = wait_for(lambda: find(browser, '[data-port="greet.place"]'), what="the new port")[0]
    source = find(browser, '[data-port="name.value"]')[0]
    ActionChains(browser).click_and_hold(source).move_to_element(port).pause(0.2).release(
        port
    ).perform()
    wait_for(lambda: find(browser, '[data-edge="name.value->greet.place"]'), what="the edge")


def test_delete_undo_redo_copy_paste_and_auto_layout(browser: WebDriver, base_url: str) -> None:
    workflow_id = create(base_url, example("greeting.json"))
    open_editor(browser, base_url, workflow_id)

    def drawn() -> set[str]:
        return set(browser.execute_script(
            "return [...document.querySelectorAll('[data-node-id]')].map(e => e.dataset.nodeId)"
        ))

    def keys(*combo: str) -> None:
        chain = ActionChains(browser)
        for key in combo[:-1]:
            chain.key_down(key)
        chain.send_keys(combo[-1])
        for key in reversed(combo[:-1]):
            chain.key_up(key)
        chain.perform()

    find(browser, '[data-node-id="greet"]')[0].click()
    keys(Keys.DELETE)
    wait_for(lambda: "greet" not in drawn(), what="the deletion")
    assert not find(browser, '[data-edge="name.value->greet.name"]')
    keys(Keys.CONTROL, "z")
    wait_for(lambda: "greet" in drawn() and len(find(browser, "[data-edge]")) == 2, what="undo")
    keys(Keys.CONTROL, Keys.SHIFT, "z")
    wait_for(lambda: "greet" not in drawn(), what="redo")
    keys(Keys.CONTROL, "z")
    wait_for(lambda: "greet" in drawn(), what="undo again")

    find(browser, '[data-node-id="greet"]')[0].click()
    keys(Keys.CONTROL, "c")
    keys(Keys.CONTROL, "v")
    wait_for(lambda: "greet_2" in drawn(), what="the pasted node")
    source = find(browser, '[data-port="name.value"]')[0]
    target = wait_for(lambda: find(browser, '[data-port="greet_2.name"]'))[0]
    ActionChains(browser).click_and_hold(source).move_to_element(target).pause(0.2).release(
        target
    ).perform()
    wait_for(lambda: find(browser, '[data-edge="name.value->greet_2.name"]'), what="the edge")
    button(browser, "Auto-layout").click()
    button(browser, "Save").click()
    document = wait_for(
        lambda: (d := saved(base_url, workflow_id))["version"] == 2 and d["document"],
        what="version 2",
    )
    positions = {node["id"]: (node["ui"]["x"], node["ui"]["y"]) for node in document["nodes"]}
    assert set(positions) == {"name", "greet", "greeting", "greet_2"}
    # Columns by generation: the input, then both templates one above the other, then the output.
    assert positions["name"][0] < positions["greet"][0] == positions["greet_2"][0]
    assert positions["greet"][1] != positions["greet_2"][1]
    assert positions["greeting"][0] > positions["greet"][0]


def test_a_map_node_draws_its_bodys_ports_and_shows_its_progress(
    browser: WebDriver, base_url: str
) -> None:
    document = shout_each(["a", "b", "c"])
    workflow_id = create(base_url, document)
    open_editor(browser, base_url, workflow_id)
    ports = ('[data-port="m.items"]', '[data-port="m.loud"]')
    wait_for(lambda: all(find(browser, port) for port in ports), what="the map's body's ports")
    assert find(browser, '[data-port="m.errors"]')
    edges = {e.get_attribute("data-edge") for e in find(browser, "[data-edge]")}
    assert edges == {"words.value->m.items", "m.loud->loud.value"}
    button(browser, "Run").click()
    button(browser, "Start").click()
    wait_for(lambda: status(browser, "loud") == "succeeded", timeout=30, what="the run to end")
    progress = wait_for(lambda: [e.text for e in find(browser, '[data-progress="m"]')
                                 if e.text == "3/3"], what="the map's progress")
    assert progress == ["3/3"]
    output = wait_for(lambda: find(browser, '[data-output="loud"]'), what="the output panel")
    assert all(f'"{word}"' in output[0].text for word in "ABC")
    screenshot(browser, "map")


def test_double_click_opens_a_body_edits_it_and_the_breadcrumb_leads_back(
    browser: WebDriver, base_url: str
) -> None:
    document = example("csv-pipeline.json")
    workflow_id = create(base_url, document)
    open_editor(browser, base_url, workflow_id)
    node = find(browser, '[data-node-id="slogans"]')[0]
    ActionChains(browser).double_click(node).perform()
    body_ids = {node["id"] for node in document["subgraphs"]["slogan"]["nodes"]}
    wait_for(lambda: {e.get_attribute("data-node-id") for e in find(browser, "[data-node-id]")}
             == body_ids, what="the body's nodes")
    assert find(browser, '[data-port="prompt.row"]')  # a template's ports, from the server
    assert "slogans (slogan)" in find(browser, "[data-breadcrumb]")[0].text
    find(browser, '[data-node-id="tidy"]')[0].click()
    area = wait_for(lambda: find(browser, 'textarea[data-param="template"]'), what="the form")[0]
    area.send_keys(" ")
    button(browser, "Save").click()
    wait_for(lambda: saved(base_url, workflow_id)["version"] == 2, what="the saved body")
    stored = saved(base_url, workflow_id)["document"]
    (tidy,) = [n for n in stored["subgraphs"]["slogan"]["nodes"] if n["id"] == "tidy"]
    assert tidy["params"]["template"] == "{{ text | trim }} "
    assert [n["id"] for n in stored["nodes"]] == [n["id"] for n in document["nodes"]]
    find(browser, '[data-crumb="0"]')[0].click()
    wait_for(lambda: {e.get_attribute("data-node-id") for e in find(browser, "[data-node-id]")}
             == {node["id"] for node in document["nodes"]}, what="the workflow's nodes again")
    assert find(browser, '[data-port="slogans.items"]')
    screenshot(browser, "body")


def test_group_into_subgraph_and_run_as_before(browser: WebDriver, base_url: str) -> None:
    workflow_id = create(base_url, example("profile.json"))
    open_editor(browser, base_url, workflow_id)
    era, work = (find(browser, f'[data-node-id="{n}"]')[0] for n in ("era", "work"))
    ActionChains(browser).click(era).key_down(Keys.SHIFT).click(work).key_up(Keys.SHIFT).perform()
    wait_for(lambda: len(find(browser, ".vue-flow__node.selected")) == 2, what="two selected")
    button(browser, "Group into subgraph").click()
    wait_for(lambda: find(browser, '[data-node-id="group"]'), what="the subgraph node")
    wait_for(lambda: find(browser, '[data-port="group.born"]'), what="its ports, from its body")
    assert not find(browser, '[data-node-id="era"]')
    button(browser, "Save").click()
    wait_for(lambda: saved(base_url, workflow_id)["version"] == 2, what="the grouped document")
    stored = saved(base_url, workflow_id)["document"]
    assert {n["id"] for n in stored["subgraphs"]["group"]["nodes"]} >= {"era", "work"}
    run = httpx.post(f"{base_url}/api/workflows/{workflow_id}/runs", json={"wait": True},
                     timeout=60).json()
    assert run["status"] == "succeeded", run["error"]
    assert run["outputs"]["profile"]["century"] == 19


def test_an_opened_map_shows_the_picked_items_states_and_values(
    browser: WebDriver, base_url: str
) -> None:
    document = shout_each(["a", "b", "c"])
    workflow_id = create(base_url, document)
    httpx.post(f"{base_url}/api/workflows/{workflow_id}/runs", json={"wait": True}, timeout=60)
    open_editor(browser, base_url, workflow_id)
    ActionChains(browser).double_click(find(browser, '[data-node-id="m"]')[0]).perform()

    def shown_text() -> str:
        found = find(browser, '[data-node-id="up"] .nl-text')
        return found[0].text if found else ""

    wait_for(lambda: status(browser, "up") == "succeeded" and '"A"' in shown_text(),
             what="item 0's states")
    picker = find(browser, 'input[data-picker="1"]')[0]
    picker.send_keys(Keys.BACKSPACE, "2", Keys.ENTER)
    wait_for(lambda: '"C"' in shown_text(), what="item 2's value")

"""The canvas's other pages in a real headless Chromium: importing workflow files (an invalid one
is refused and nothing is stored), saved agents, workspace files."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import httpx
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver

from tests.support.browser import ROOT, button, click_when_free, find, wait_for


def notices(browser: WebDriver) -> list[str]:
    return [element.text for element in find(browser, ".q-notification")]


def upload(browser: WebDriver, path: Path) -> None:
    field = wait_for(lambda: find(browser, "input[type=file]"), what="the upload field")[0]
    field.send_keys(str(path))


def test_import_refuses_an_invalid_workflow_and_stores_nothing(
    browser: WebDriver, base_url: str, tmp_path: Path
) -> None:
    before = httpx.get(f"{base_url}/api/workflows", params={"limit": 200}).json()["items"]
    broken = tmp_path / "broken.json"
    broken.write_text('{"schema_version": 1, "name": "Broken", "nodes": ['
                      '{"id": "a", "type": "template", "colour": "red"}], "edges": []}')
    browser.get(base_url + "/")
    upload(browser, broken)
    wait_for(lambda: any("unknown field `colour`" in text for text in notices(browser)),
             what="the import's errors")
    after = httpx.get(f"{base_url}/api/workflows", params={"limit": 200}).json()["items"]
    assert len(after) == len(before)

    draft = tmp_path / "draft.json"  # it decodes: imported as a draft, its issues told
    draft.write_text('{"schema_version": 1, "name": "Draft", "nodes": ['
                     '{"id": "a", "type": "no_such_type"}], "edges": []}')
    upload(browser, draft)
    wait_for(lambda: any("Imported Draft with 1 issue" in text and "unknown node type" in text
                         for text in notices(browser)), what="the draft's import")

    upload(browser, ROOT / "workflows" / "greeting.json")
    wait_for(lambda: any("Imported Greeting" in text for text in notices(browser)),
             what="the import")
    names = [w["name"] for w in httpx.get(f"{base_url}/api/workflows").json()["items"]]
    assert "Greeting" in names


def test_a_saved_agent_is_created_on_its_page(browser: WebDriver, base_url: str) -> None:
    browser.get(base_url + "/agents")
    button(browser, "New agent").click()
    name = wait_for(lambda: [e for e in find(browser, "input")
                             if e.get_attribute("aria-label") == "name"], what="the form")[0]
    name.send_keys("Reckoner")
    labelled = {e.get_attribute("aria-label"): e for e in find(browser, "input")}
    labelled["description"].send_keys("Adds numbers")
    limit = labelled["max tokens per step"]
    limit.send_keys(Keys.CONTROL, "a")
    limit.send_keys("64")
    button(browser, "Save agent").click()
    # No model chosen: the API refuses, the dialog keeps what was typed.
    wait_for(lambda: any("Not saved" in text for text in notices(browser)), what="the refusal")
    assert name.get_attribute("value") == "Reckoner"
    assert httpx.get(f"{base_url}/api/agents").json()["items"] == []
    find(browser, ".q-select")[0].click()
    click_when_free(lambda: find(browser, ".q-menu .q-item")[0], what="the model list")
    button(browser, "Save agent").click()
    wait_for(lambda: find(browser, "[data-agent]"), what="the saved agent")
    agents = httpx.get(f"{base_url}/api/agents").json()["items"]
    assert [a["config"]["name"] for a in agents] == ["Reckoner"]
    assert agents[0]["config"]["model"] == "gemma-3-270m"
    assert agents[0]["config"]["description"] == "Adds numbers"
    assert agents[0]["config"]["max_tokens"] == 64
    wait_for(lambda: any("Adds numbers" in e.text for e in find(browser, "[data-agent]")),
             what="the agent's description in the list")


def test_the_usage_page_charts_the_model_calls(browser: WebDriver, base_url: str) -> None:
    chat = httpx.post(f"{base_url}/v1/chat/completions", timeout=60, json={
        "model": "model:gemma-3-270m", "max_tokens": 2, "temperature": 0,
        "messages": [{"role": "user", "content": "Hello"}]})  # fmt: skip
    assert chat.status_code == 200, chat.text
    browser.get(base_url + "/")
    links = wait_for(lambda: [e for e in find(browser, "a") if e.text == "Usage"], what="the link")
    links[0].click()
    wait_for(lambda: find(browser, "[data-usage-chart] canvas"), what="the chart")
    table = wait_for(lambda: find(browser, "[data-usage-table]"), what="the table")[0]
    assert "gemma-3-270m" in table.text
    button(browser, "day").click()
    today = datetime.now(UTC).date().isoformat()
    wait_for(lambda: any(today in e.text for e in find(browser, "[data-usage-table]")),
             what="today's row")


def test_workspace_files_are_uploaded_viewed_and_deleted(
    browser: WebDriver, base_url: str, tmp_path: Path
) -> None:
    note = tmp_path / "note.txt"
    note.write_text("hello from the browser\n")
    browser.get(base_url + "/files")
    upload(browser, note)
    wait_for(lambda: find(browser, '[data-file="note.txt"]'), what="the uploaded file")
    assert httpx.get(f"{base_url}/api/files/note.txt").text == "hello from the browser\n"
    button(browser, "note.txt").click()
    wait_for(lambda: any("hello from the browser" in e.text for e in find(browser, ".q-dialog")),
             what="the file's content")
    button(browser, "Close").click()
    row = find(browser, '[data-file="note.txt"]')[0]
    next(b for b in row.find_elements("css selector", "button") if b.text == "DELETE").click()
    wait_for(lambda: not find(browser, '[data-file="note.txt"]'), what="the deletion")
    assert httpx.get(f"{base_url}/api/files/note.txt").status_code == 404

"""The collections page in a real headless Chromium: a collection created, workspace files
added by glob and indexed (the progress shown), and a search showing ranked chunks with their
sources."""

from __future__ import annotations

import httpx
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver

from tests.support.browser import button, find, wait_for


def field(browser: WebDriver, marker: str) -> object:
    return wait_for(lambda: find(browser, f"[{marker}] input, input[{marker}]"), what=marker)[0]


def test_create_add_and_search(browser: WebDriver, base_url: str) -> None:
    for name, text in (("ui-notes/kites.md", "# Kites\n\nKites were first flown in China.\n"),
                       ("ui-notes/tea.md", "# Tea\n\nMatcha is whisked in a bowl.\n")):
        put = httpx.put(f"{base_url}/api/files/{name}", content=text.encode())
        assert put.status_code in (200, 201), put.text
    browser.get(base_url + "/collections")
    name = field(browser, "data-collection-name")
    name.send_keys("ui-notes")  # type: ignore[attr-defined]
    button(browser, "Create").click()
    card = '[data-collection="ui-notes"]'
    wait_for(lambda: find(browser, card), what="the new collection")
    glob = field(browser, "data-collection-glob")
    glob.send_keys("ui-notes/*.md")  # type: ignore[attr-defined]
    button(browser, "Add files").click()
    wait_for(lambda: any("done: 2/2 files" in e.text
                         for e in find(browser, f"{card} [data-collection-progress]")),
             what="the indexing progress")  # fmt: skip
    assert "2 documents · 2 chunks" in find(browser, f"{card} [data-collection-counts]")[0].text
    [collection] = [c for c in httpx.get(f"{base_url}/api/collections").json()["items"]
                    if c["name"] == "ui-notes"]  # fmt: skip
    assert collection["documents"] == 2

    find(browser, ".q-select")[1].click()  # the embedding model's, the collection's, the mode's
    wait_for(lambda: [e for e in find(browser, ".q-item") if e.text == "ui-notes"],
             what="the collection in the list")[0].click()  # fmt: skip
    query = field(browser, "data-search-query")
    query.send_keys("Where were kites first flown?", Keys.ENTER)  # type: ignore[attr-defined]
    hits = wait_for(lambda: find(browser, "[data-search-hit]"), what="the results")
    assert hits[0].text.startswith("[1] ui-notes/kites.md · chunk 0 · score ")
    assert "Kites were first flown in China." in hits[0].text

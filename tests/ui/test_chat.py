"""The chat page in the browser (SPEC §13): start a conversation with the embedded model, watch
the answer stream in, ask again, edit a question into a branch and move between the branches,
regenerate an answer, then reload and find it all again."""

from __future__ import annotations

import httpx
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver

from tests.support.browser import attribute, find, wait_for

TARGET = "model · gemma-3-270m"


def answers(browser: WebDriver) -> list[str]:
    return [e.get_attribute("data-message") or "" for e in
            find(browser, '[data-chat-thread] [data-role="assistant"]')]  # fmt: skip


def ask(browser: WebDriver, text: str) -> None:
    box = find(browser, "textarea[data-chat-input]")[0]
    box.send_keys(text)
    find(browser, "[data-chat-send]")[0].click()


def set_number(browser: WebDriver, css: str, value: str) -> None:
    field = find(browser, css)[0]
    field.send_keys(Keys.CONTROL, "a")
    field.send_keys(value, Keys.TAB)


def test_a_conversation_in_the_page(browser: WebDriver, base_url: str) -> None:
    browser.get(f"{base_url}/chat")
    wait_for(lambda: find(browser, "[data-chat-target]"), what="the target picker")[0].click()
    wait_for(lambda: [e for e in find(browser, ".q-menu .q-item") if e.text == TARGET],
             what="the model in the list")[0].click()  # fmt: skip
    find(browser, "[data-chat-new]")[0].click()
    wait_for(lambda: "/chat/conv_" in browser.current_url, what="the new conversation")
    conversation_id = browser.current_url.rsplit("/", 1)[1]
    talks_to = wait_for(lambda: find(browser, '[data-chat-talks-to="model:gemma-3-270m"]'),
                        what="the target named")[0]  # fmt: skip
    assert talks_to.text == TARGET
    wait_for(lambda: find(browser, "textarea[data-chat-input]"), what="the question box")
    set_number(browser, "input[data-chat-temperature]", "0")
    set_number(browser, "input[data-chat-max-tokens]", "24")

    ask(browser, "Name three colours.")
    first = wait_for(lambda: answers(browser), timeout=60, what="the first answer")[0]
    chunks = attribute(browser, f'[data-message="{first}"]', "data-chunks")
    assert chunks is not None
    assert int(chunks) > 1  # the page showed the answer token by token
    text = find(browser, f'[data-message="{first}"] [data-message-text]')[0].text
    assert text.strip()
    assert "tokens" in find(browser, f'[data-message="{first}"] [data-message-usage]')[0].text
    assert not find(browser, "[data-chat-stop]")[0].is_displayed()

    ask(browser, "And two animals?")
    wait_for(lambda: len(answers(browser)) == 2, timeout=60, what="the second answer")
    questions = find(browser, '[data-chat-thread] [data-role="user"]')
    shown = [q.text.splitlines()[0] for q in questions]
    assert shown == ["Name three colours.", "And two animals?"]

    # Edit the second question: a branch beside it.
    find(browser, '[data-chat-thread] [data-role="user"]')[1].find_element(
        "css selector", "[data-message-edit]").click()
    box = wait_for(lambda: find(browser, "textarea[data-edit-input]"), what="the edit box")[0]
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys("And two birds?")
    find(browser, "[data-edit-send]")[0].click()
    wait_for(lambda: find(browser, '[data-branch="2/2"]') and len(answers(browser)) == 2
             and not find(browser, "[data-streaming]"), timeout=60,
             what="the edited branch")  # fmt: skip
    thread = find(browser, "[data-chat-thread]")[0]
    assert "And two birds?" in thread.text
    assert "And two animals?" not in thread.text

    find(browser, "[data-branch-prev]")[0].click()
    wait_for(lambda: find(browser, '[data-branch="1/2"]'), what="the first branch")
    assert "And two animals?" in find(browser, "[data-chat-thread]")[0].text

    # Regenerate the first answer: a second answer to the first question.
    find(browser, '[data-chat-thread] [data-role="assistant"] [data-message-regenerate]')[0].click()
    wait_for(lambda: len(answers(browser)) == 1 and find(browser, '[data-branch="2/2"]')
             and not find(browser, "[data-streaming]"), timeout=60,
             what="the regenerated answer")  # fmt: skip

    browser.refresh()
    wait_for(lambda: find(browser, f'[data-conversation="{conversation_id}"]'), what="the list")
    listed = find(browser, f'[data-conversation="{conversation_id}"]')[0].text
    assert listed.startswith("Name three colours.")  # the first question names it
    wait_for(lambda: answers(browser), what="the thread after a reload")
    assert find(browser, '[data-branch="2/2"]')  # the regenerated answer, shown last
    stored = httpx.get(f"{base_url}/api/conversations/{conversation_id}").json()
    assert [m["role"] for m in stored["messages"]].count("assistant") == 4
    assert len(stored["messages"]) == 7
    drawn = {e.get_attribute("data-message") for e in find(browser, "[data-message]")}
    assert drawn <= {m["id"] for m in stored["messages"]}

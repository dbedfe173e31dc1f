"""The canvas on a server that has users: a page leads to `/signin`, a wrong token or password is
refused on the form, the right one opens the pages (each API call carries it), signing out forgets
it; the Tokens page creates, shows once, lists and revokes; the key that signs the sessions."""

from __future__ import annotations

import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver

from tests.support.browser import (
    button,
    create,
    example,
    find,
    open_editor,
    server,
    wait_for,
)
from tests.support.cli import nodeloom
from tests.support.documents import ROOT
from ui.auth import SECRET_ENV, _local, secret_key


@pytest.fixture(scope="module")
def locked(tmp_path_factory: pytest.TempPathFactory, embedded_model: Path) -> Iterator[
    tuple[str, str]
]:
    """(base URL, token) of a server with one user."""
    folder = tmp_path_factory.mktemp("locked")
    with server(folder) as url:
        database = f"sqlite:///{folder}/nodeloom.db"
        assert nodeloom("users", "create", "ada", "--db", database).returncode == 0
        given = subprocess.run(
            [sys.executable, "-m", "server.cli", "users", "set-password", "ada", "--db", database],
            input=PASSWORD + "\n", capture_output=True, text=True, timeout=60, cwd=ROOT,
            check=False,
        )
        assert given.returncode == 0, given.stderr
        made = nodeloom("tokens", "create", "ada", "--db", database)
        assert made.returncode == 0, made.stderr
        token = made.stdout.strip().splitlines()[-1]
        deadline = time.monotonic() + 10  # the server notices the new user within a second
        while httpx.get(f"{url}/api/workflows").status_code != 401:
            assert time.monotonic() < deadline, "the server stayed in open local mode"
            time.sleep(0.2)
        yield url, token


PASSWORD = "a long enough password"


def typed(browser: WebDriver, css: str, text: str) -> None:
    field = wait_for(lambda: find(browser, css), what=css)[0]
    field.send_keys(Keys.CONTROL, "a")  # clear() would leave Vue's model as it was
    field.send_keys(Keys.BACKSPACE)
    if text:
        field.send_keys(text)


def signin(browser: WebDriver, token: str) -> None:
    field = wait_for(lambda: find(browser, "input[data-token]"), what="the token field")[0]
    field.send_keys(Keys.CONTROL, "a")  # clear() would leave Vue's model as it was
    field.send_keys(Keys.BACKSPACE)
    field.send_keys(token)
    button(browser, "Sign in").click()


def test_sign_in_with_a_token_use_the_pages_and_sign_out(
    browser: WebDriver, locked: tuple[str, str]
) -> None:
    base_url, token = locked
    workflow_id = create(base_url, example("greeting.json"), token)

    browser.get(f"{base_url}/workflows/{workflow_id}")
    wait_for(lambda: "/signin" in browser.current_url, what="the sign-in page")
    assert not find(browser, "[data-open-mode]")
    signin(browser, "nl_not_a_token")
    wait_for(lambda: "this token is not valid" in browser.page_source, what="the refusal")
    assert "/signin" in browser.current_url

    signin(browser, token)
    # Back where the person was going, the editor drawn with data the token gave access to.
    wait_for(lambda: f"/workflows/{workflow_id}" in browser.current_url, what="the editor")
    open_editor(browser, base_url, workflow_id, token)
    browser.get(base_url + "/")
    wait_for(lambda: find(browser, f'[data-workflow="{workflow_id}"]'), what="the list")

    button(browser, "Sign out").click()
    wait_for(lambda: "/signin" in browser.current_url, what="signed out")
    browser.get(base_url + "/agents")
    wait_for(lambda: "/signin" in browser.current_url, what="the sign-in page again")


def test_sign_in_with_a_password_and_manage_tokens(
    browser: WebDriver, locked: tuple[str, str]
) -> None:
    base_url, _ = locked
    browser.get(f"{base_url}/signin?next=/tokens")
    typed(browser, "input[data-token]", "")
    typed(browser, "input[data-username]", "ada")
    typed(browser, "input[data-password]", "not the password")
    button(browser, "Sign in").click()
    wait_for(lambda: "wrong user name or password" in browser.page_source, what="the refusal")
    typed(browser, "input[data-password]", PASSWORD)
    button(browser, "Sign in").click()
    wait_for(lambda: browser.current_url.endswith("/tokens"), what="the tokens page")
    wait_for(lambda: find(browser, "[data-token-id]"), what="the sign-in token listed")

    typed(browser, "input[data-token-name]", "ci")
    typed(browser, "input[data-token-days]", "7")
    button(browser, "Create token").click()
    shown = wait_for(lambda: find(browser, "[data-new-token]"), what="the new token")[0]
    secret = shown.text.strip()
    assert secret.startswith("nl_")
    headers = {"Authorization": f"Bearer {secret}"}
    me = httpx.get(f"{base_url}/api/me", headers=headers).json()
    assert me["name"] == "ada"
    row = wait_for(
        lambda: find(browser, f'[data-token-id="{me["token_id"]}"]'), what="the new token's row"
    )[0]
    assert "expires" in row.text
    assert secret not in row.text

    revoke = row.find_element("css selector", "button")
    revoke.click()
    wait_for(
        lambda: httpx.get(f"{base_url}/api/me", headers=headers).status_code == 401,
        what="the token refused once revoked",
    )
    wait_for(lambda: not find(browser, f'[data-token-id="{me["token_id"]}"]'), what="unlisted")


def test_open_local_mode_needs_no_sign_in(browser: WebDriver, base_url: str) -> None:
    browser.get(base_url + "/signin")
    wait_for(lambda: find(browser, "[data-open-mode]"), what="the open-mode note")
    browser.get(base_url + "/agents")
    button(browser, "New agent")
    assert "/signin" not in browser.current_url


def test_the_secret_key_comes_from_the_environment_or_is_kept_private(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(SECRET_ENV, raising=False)
    made = secret_key(tmp_path / "state")
    assert secret_key(tmp_path / "state") == made  # kept: sessions survive a restart
    assert stat.S_IMODE((tmp_path / "state" / "ui-secret-key").stat().st_mode) == 0o600
    monkeypatch.setenv(SECRET_ENV, "from-the-environment")
    assert secret_key(tmp_path / "state") == "from-the-environment"


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/workflows/wf_1", "/workflows/wf_1"),
        ("/runs/run_1?tab=nodes", "/runs/run_1?tab=nodes"),
        ("//evil.example", "/"),
        ("/\\evil.example", "/"),
        ("https://evil.example/", "/"),
        ("/a\r\nSet-Cookie: x", "/"),
    ],
)
def test_sign_in_returns_only_to_pages_of_this_server(target: str, expected: str) -> None:
    assert _local(target) == expected

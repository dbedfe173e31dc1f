"""Signing in to a server that has users (SPEC §6, §18): with a user name and password (the API
answers a token) or a pasted API token; the canvas keeps the token in NiceGUI's per-browser
`app.storage.user` and sends it with every API call; a 401 from the API leads to `/signin`. In
open local mode none of this is needed and nothing is asked.

The storage is signed with a secret key: ``NODELOOM_SECRET_KEY``, else one generated once and
kept (owner-only) in the server's state folder, so sessions survive a restart."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

from fastapi.responses import RedirectResponse
from nicegui import app, ui

from ui.client import Api, ApiError

SECRET_ENV = "NODELOOM_SECRET_KEY"  # noqa: S105 - the variable's name, not a secret
STATE_DIR = Path(".nodeloom")  # the server's state folder (SQLite's by default)
SECRET_FILE = "ui-secret-key"  # noqa: S105 - a file name


def secret_key(state_dir: Path = STATE_DIR) -> str:
    """The key that signs the canvas's sessions; never logged."""
    from_env = os.environ.get(SECRET_ENV, "").strip()
    if from_env:
        return from_env
    path = state_dir / SECRET_FILE
    try:
        return _read_key(path)
    except FileNotFoundError:
        pass
    key = secrets.token_urlsafe(32)
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process wrote it first: use theirs
        return _read_key(path)
    except OSError as exc:
        raise RuntimeError(
            f"cannot keep the canvas's secret key in {path} ({exc.strerror}): "
            f"set {SECRET_ENV} or make {state_dir} writable"
        ) from None
    with os.fdopen(descriptor, "w") as file:
        file.write(key)
    return key


def _read_key(path: Path) -> str:
    key = path.read_text().strip()
    if not key:
        raise RuntimeError(f"{path} is empty: delete it (a new key is made) or set {SECRET_ENV}")
    return key


def _has_user_storage() -> bool:
    try:
        app.storage.user  # noqa: B018 - raises without a storage secret or request
    except (RuntimeError, AssertionError):
        return False
    return True


def token() -> str | None:
    """This browser's API token, if it signed in."""
    return app.storage.user.get("token") if _has_user_storage() else None


def _here() -> str:
    request = ui.context.client.request
    return request.url.path + (f"?{request.url.query}" if request.url.query else "")


def signin_url(target: str | None = None) -> str:
    return f"/signin?next={quote(target or _here(), safe='')}"


def to_signin() -> RedirectResponse:
    """The answer to a page whose API calls were refused for want of a (valid) token. A page
    whose HTML went out already (a timer of its header started) cannot be redirected any more:
    the browser is sent on from the page itself then."""
    target = signin_url()
    ui.navigate.to(target)
    return RedirectResponse(target, status_code=303)


def _local(target: str) -> str:
    """Only paths on this server (no open redirect; browsers read a backslash as a slash)."""
    local = target.startswith("/") and not target.startswith(("//", "/\\"))
    return target if local and "\n" not in target and "\r" not in target else "/"


def api_failed(exc: Exception) -> None:
    """A page's handler for API calls that fail after the page was delivered."""
    if not isinstance(exc, ApiError):
        return
    if exc.status == 401:
        ui.navigate.to(signin_url())
    elif exc.status == 0:
        ui.notify("The server cannot be reached; nothing was lost, try again in a moment.",
                  type="warning", classes="nl-offline")
    else:
        ui.notify(exc.detail, type="negative", multi_line=True)


def sign_out() -> None:
    if _has_user_storage():
        app.storage.user.pop("token", None)
    ui.navigate.to("/signin")


async def signin_page(api_url: Callable[[], str], target: str) -> None:
    """A user name and password (`POST /api/auth/login` gives a token), or a pasted token."""
    target = _local(target)
    with ui.card().classes("w-[32rem] mx-auto mt-16"):
        ui.label("Sign in").classes("text-xl font-bold")
        username = ui.input("User name").classes("w-full").props(
            'data-username autocomplete="username"'
        )
        password = ui.input("Password", password=True).classes("w-full").props(
            'data-password autocomplete="current-password"'
        )
        ui.label("or paste an API token (nodeloom tokens create USER prints one)").classes(
            "text-sm text-gray-600 mt-2"
        )
        field = ui.input("API token", password=True, password_toggle_button=True)
        field.classes("w-full").props('data-token autocomplete="off"')
        message = ui.label("").classes("text-sm text-red-700").props("data-signin-error")

        def refuse(why: str) -> None:
            message.text = why

        async def with_password(name: str, secret: str) -> str | None:
            api = Api(api_url())
            try:
                session = await api.call(
                    "POST",
                    "/api/auth/login",
                    body={"username": name, "password": secret},
                    headers={"X-Forwarded-For": _browser_address()},
                )
            except ApiError as exc:
                refuse("wrong user name or password" if exc.status == 401 else exc.detail)
                return None
            finally:
                await api.close()
            return str(session.json()["token"])

        async def with_token(pasted: str) -> str | None:
            api = Api(api_url(), pasted)
            try:
                await api.get("/api/me")
            except ApiError as exc:
                refuse("this token is not valid" if exc.status == 401 else exc.detail)
                return None
            finally:
                await api.close()
            return pasted

        async def submit() -> None:
            pasted = (field.value or "").strip()
            name, secret = (username.value or "").strip(), password.value or ""
            if pasted:
                token = await with_token(pasted)
            elif name and secret:
                token = await with_password(name, secret)
            else:
                refuse("give a user name and password, or paste a token")
                return
            if token is not None:
                app.storage.user["token"] = token
                ui.navigate.to(target)

        for each in (username, password, field):
            each.on("keydown.enter", submit)
            each.on_value_change(lambda: setattr(message, "text", ""))
        ui.button("Sign in", on_click=submit)
    if await _open_mode(api_url()):
        ui.label("This server runs in open local mode: no token is needed.").classes(
            "text-sm text-gray-500 mx-auto mt-2"
        ).props("data-open-mode")


def _browser_address() -> str:
    """The address the browser asked from, for the API's limits on failed sign-ins (the canvas
    calls the API from this server, so it says whom it calls for)."""
    request = ui.context.client.request
    return request.client.host if request.client else ""


async def _open_mode(base_url: str) -> bool:
    api = Api(base_url)
    try:
        await api.get("/api/workflows", limit=1)
    except ApiError:
        return False
    finally:
        await api.close()
    return True

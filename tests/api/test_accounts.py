"""Accounts (SPEC §18) on both databases: password sign-in, `/api/me`, tokens listed without
their secrets, expiring, revoked at once on every server sharing the database; failed sign-ins
limited per user name and per address, alike for users that exist and users that do not."""

from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path

import pytest
from litestar.testing import AsyncTestClient

from engine.storage.accounts import Accounts
from engine.storage.database import Database
from server.app import create_app
from server.cli import main
from server.signins import SignInLimits
from tests.support.api import make_config
from tests.support.nodes import api_test_registry

PASSWORD = "correct horse battery"


async def test_sign_in_tokens_and_revocation(tmp_path: Path, database_url: str) -> None:
    database = await Database.connect(database_url)
    accounts = Accounts(database)
    await accounts.create_user("ada", PASSWORD)
    await accounts.create_user("bob")  # tokens only
    config = make_config(tmp_path, database_url, host="0.0.0.0")
    first = create_app(config, registry=api_test_registry())
    second = create_app(config, registry=api_test_registry())  # another server, same database
    try:
        async with AsyncTestClient(app=first) as one, AsyncTestClient(app=second) as two:
            wrong = await one.post(
                "/api/auth/login", json={"username": "ada", "password": "wrong password"}
            )
            nobody = await one.post(
                "/api/auth/login", json={"username": "nobody", "password": "wrong password"}
            )
            no_password = await one.post(
                "/api/auth/login", json={"username": "bob", "password": PASSWORD}
            )
            for refused in (wrong, nobody, no_password):  # nothing says who exists
                assert refused.status_code == 401
                assert refused.json()["detail"] == "wrong user name or password"

            signed = await one.post(
                "/api/auth/login", json={"username": "ada", "password": PASSWORD}
            )
            assert signed.status_code == 200, signed.text
            session = signed.json()
            assert session["token"].startswith("nl_")
            assert session["expires_at"] is not None
            as_ada = {"Authorization": f"Bearer {session['token']}"}
            me = (await two.get("/api/me", headers=as_ada)).json()
            assert me["name"] == "ada"
            assert me["open_mode"] is False

            made = await one.post(
                "/api/tokens", json={"name": "ci", "expires_in_days": 7}, headers=as_ada
            )
            assert made.status_code == 201, made.text
            ci = made.json()
            assert ci["name"] == "ci"
            as_ci = {"Authorization": f"Bearer {ci['token']}"}
            assert (await two.get("/api/workflows", headers=as_ci)).status_code == 200

            listed = (await one.get("/api/tokens", headers=as_ada)).json()["items"]
            assert {token["name"] for token in listed} == {"ci", "sign-in"}
            assert all("token" not in token and "token_hash" not in token for token in listed)
            used = next(token for token in listed if token["name"] == "ci")
            assert used["last_used_at"] is not None
            assert used["expires_at"] is not None

            # Bob sees neither Ada's tokens nor can he revoke them.
            _, bob = await accounts.create_token("bob")
            as_bob = {"Authorization": f"Bearer {bob}"}
            bobs = (await one.get("/api/tokens", headers=as_bob)).json()["items"]
            assert [token["id"] for token in bobs] == [
                (await two.get("/api/me", headers=as_bob)).json()["token_id"]
            ]
            stolen = await one.delete(f"/api/tokens/{ci['id']}", headers=as_bob)
            assert stolen.status_code == 404

            # Revoked on one server: refused on its very next request on both.
            assert (await two.get("/api/workflows", headers=as_ci)).status_code == 200
            revoked = await one.delete(f"/api/tokens/{ci['id']}", headers=as_ada)
            assert revoked.status_code == 204
            assert (await two.get("/api/workflows", headers=as_ci)).status_code == 401
            assert (await one.get("/api/workflows", headers=as_ci)).status_code == 401
            again = await one.delete(f"/api/tokens/{ci['id']}", headers=as_ada)
            assert again.status_code == 404

            # An expired token is refused.
            user = await accounts.find_user("ada")
            _, old = await accounts.issue_token(user.id, expires_in=timedelta(seconds=-1))
            expired = await one.get("/api/me", headers={"Authorization": f"Bearer {old}"})
            assert expired.status_code == 401
    finally:
        await database.close()


async def test_failed_sign_ins_are_limited(tmp_path: Path, sqlite_url: str) -> None:
    database = await Database.connect(sqlite_url)
    await Accounts(database).create_user("ada", PASSWORD)
    await database.close()
    app = create_app(make_config(tmp_path, sqlite_url), registry=api_test_registry())
    async with AsyncTestClient(app=app) as client:
        for _ in range(5):
            wrong = {"username": "ada", "password": "not it, no"}
            assert (await client.post("/api/auth/login", json=wrong)).status_code == 401
        # Locked for a while, even with the right password.
        right = await client.post("/api/auth/login", json={"username": "ada", "password": PASSWORD})
        assert right.status_code == 429
        assert int(right.headers["retry-after"]) >= 1
        assert right.headers["content-type"].startswith("application/problem+json")
        # A name that does not exist is limited alike.
        for _ in range(5):
            ghost = {"username": "ghost", "password": "not it, no"}
            assert (await client.post("/api/auth/login", json=ghost)).status_code == 401
        ghost = {"username": "ghost", "password": "not it, no"}
        assert (await client.post("/api/auth/login", json=ghost)).status_code == 429


def test_limits_per_user_and_per_address() -> None:
    moment = [0.0]
    limits = SignInLimits(per_user=3, per_address=5, window_s=60, clock=lambda: moment[0])
    for _ in range(3):
        assert limits.retry_after("Ada", "10.0.0.1") is None
        limits.failed("Ada", "10.0.0.1")
    assert limits.retry_after("ada", "10.0.0.2") == 60  # the name, from any address
    assert limits.retry_after("bob", "10.0.0.1") is None  # the address still has room
    limits.failed("bob", "10.0.0.1")
    limits.failed("carl", "10.0.0.1")
    assert limits.retry_after("dora", "10.0.0.1") == 60  # the address is used up
    assert limits.retry_after("dora", "10.0.0.3") is None
    moment[0] = 61
    assert limits.retry_after("ada", "10.0.0.1") is None  # the window slid past


async def test_open_local_mode_has_no_user(tmp_path: Path, sqlite_url: str) -> None:
    app = create_app(make_config(tmp_path, sqlite_url), registry=api_test_registry())
    async with AsyncTestClient(app=app) as client:
        me = (await client.get("/api/me")).json()
        assert me == {"id": None, "name": None, "open_mode": True, "token_id": None}
        assert (await client.get("/api/tokens")).json()["items"] == []
        assert (await client.post("/api/tokens", json={"name": "x"})).status_code == 409


def test_cli_passwords_and_tokens(
    sqlite_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert main(["users", "create", "ada", "--password", "--db", sqlite_url]) == 0
    assert "sign in with their password" in capsys.readouterr().out
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(["users", "set-password", "ada", "--db", sqlite_url]) == 1
    assert "8 to 1024 characters" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO("a new password\n"))
    assert main(["users", "set-password", "ada", "--db", sqlite_url]) == 0
    assert "password of ada set" in capsys.readouterr().out

    made = ["tokens", "create", "ada", "--label", "laptop", "--expires-in-days", "30"]
    assert main([*made, "--db", sqlite_url]) == 0
    token = capsys.readouterr().out.strip()
    assert main(["tokens", "list", "ada", "--db", sqlite_url]) == 0
    listing = capsys.readouterr().out
    assert "laptop" in listing
    assert token not in listing
    token_id = listing.splitlines()[1].split()[0]
    assert token_id.startswith("tok_")
    assert main(["tokens", "revoke", token_id, "--db", sqlite_url]) == 0
    assert main(["tokens", "revoke", token_id, "--db", sqlite_url]) == 1
    assert main(["tokens", "list", "--db", sqlite_url]) == 0
    assert "laptop" not in capsys.readouterr().out

    async def check() -> None:
        database = await Database.connect(sqlite_url)
        try:
            accounts = Accounts(database)
            assert await accounts.check_password("ada", "a new password") is not None
            assert await accounts.check_password("ada", PASSWORD) is None
            assert await accounts.user_for_token(token) is None
        finally:
            await database.close()

    import asyncio

    asyncio.run(check())


def test_attempts_in_flight_count_until_they_succeed() -> None:
    limits = SignInLimits(per_user=3, per_address=10, window_s=60, clock=lambda: 0.0)
    assert [limits.attempt("ada", "10.0.0.1") for _ in range(4)][:3] == [None, None, None]
    assert limits.attempt("ada", "10.0.0.1") == 60  # three still being checked: no fourth
    limits.succeeded("ada", "10.0.0.1")  # one was right: the name starts afresh
    assert limits.attempt("ada", "10.0.0.1") is None
    limits.withdraw("ada", "10.0.0.1")  # never checked (the checks were busy): not counted
    assert limits.retry_after("ada", "10.0.0.1") is None

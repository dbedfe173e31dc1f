"""Fixtures for the API tests: an app over a fresh database (SQLite or PostgreSQL), a test
client, and a real uvicorn server on a free loopback port."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from server.app import create_app
from tests.support.api import LiveServer, make_config
from tests.support.nodes import api_test_registry


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path}/api.db"


@pytest.fixture
def app(tmp_path: Path, database_url: str) -> Litestar:
    """The app over SQLite and over PostgreSQL (tests using it run on both)."""
    return create_app(make_config(tmp_path, database_url), registry=api_test_registry())


@pytest.fixture
def sqlite_app(tmp_path: Path, sqlite_url: str) -> Litestar:
    return create_app(make_config(tmp_path, sqlite_url), registry=api_test_registry())


@pytest.fixture
async def client(app: Litestar) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(app=app) as test_client:
        yield test_client


@pytest.fixture
async def lite(sqlite_app: Litestar) -> AsyncIterator[AsyncTestClient[Litestar]]:
    """A client of the app over SQLite only, for what does not depend on the database."""
    async with AsyncTestClient(app=sqlite_app) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A real server over SQLite, shared by the tests of a module."""
    root = tmp_path_factory.mktemp("live")
    url = f"sqlite+aiosqlite:///{root}/live.db"
    config = make_config(root, url)
    with LiveServer(create_app(config, registry=api_test_registry()), url) as server:
        yield server

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import structlog

from engine.nodes.registry import NodeRegistry
from tests.support.documents import ROOT
from tests.support.engine import builtin_registry


@pytest.fixture(autouse=True)
def _structlog_defaults() -> Any:
    """Tests that call `server.cli.main` in-process configure structlog to print to that test's
    captured stderr, which is closed afterwards: every test starts from the defaults."""
    yield
    structlog.reset_defaults()


@pytest.fixture
def registry() -> NodeRegistry:
    return builtin_registry()


@pytest.fixture(scope="session")
def pg_cluster() -> Any:
    from tests.support import postgres

    if not postgres.available():
        pytest.fail(
            "PostgreSQL 15 binaries (initdb, pg_ctl, postgres) are needed: "
            "apt-get install postgresql"
        )
    with postgres.cluster() as cluster:
        yield cluster


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    """A fresh, empty database: SQLite in a temp folder, or a new database on a real PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path}/nodeloom.db"
    return str(request.getfixturevalue("pg_cluster").create_database())


@pytest.fixture
async def database(database_url: str) -> Any:
    from engine.storage.database import Database

    db = await Database.connect(database_url)
    yield db
    await db.close()


@pytest.fixture
async def service(database: Any, tmp_path: Any) -> Any:
    from engine.runs.service import RunService
    from tests.support.nodes import test_registry

    runs = RunService(
        database, test_registry(), workspace=tmp_path / "workspace", lease_timeout_s=2
    )
    yield runs
    await runs.close()


@pytest.fixture(scope="session")
def embedded_model() -> Path:
    """The embedded GGUF in the repository's models/ folder, placed there once if missing."""
    from engine.models import embedded

    return embedded.place(ROOT / "models" / embedded.FILE_NAME)

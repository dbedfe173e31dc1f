"""`nodeloom serve --examples workflows`: the shipped examples go into an empty database once,
their data files into the workspace, and nothing already there is replaced."""

from __future__ import annotations

import asyncio
from pathlib import Path

from engine.storage.database import Database
from engine.storage.repository import Store
from server.examples import seed_examples
from tests.support.browser import ROOT


def test_examples_are_added_once_and_nothing_is_replaced(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/nodeloom.db"
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    (workspace / "products.csv").write_text("mine\n")
    examples = sorted(p for p in (ROOT / "workflows").glob("*.json"))
    added = seed_examples(url, ROOT / "workflows", workspace)
    assert len(added) == len(examples)
    assert seed_examples(url, ROOT / "workflows", workspace) == []
    assert (workspace / "products.csv").read_text() == "mine\n"

    async def names() -> list[str]:
        database = await Database.connect(url)
        try:
            page = await Store(database).list_workflows(limit=100)
        finally:
            await database.close()
        return sorted(item["name"] for item in page.items)

    assert len(asyncio.run(names())) == len(examples)

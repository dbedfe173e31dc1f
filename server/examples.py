"""`nodeloom serve --examples DIR`: the example workflows in DIR are added to the database (those
whose name no stored workflow has yet), and their data files (DIR/data/*) are copied into the
workspace unless a file of that name is there already. Nothing stored is ever replaced."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from engine.documents.document import Workflow, decode_workflow
from engine.errors import WorkflowInvalid
from engine.storage.database import Database
from engine.storage.repository import Store

MAX_LISTED = 10_000


def seed_examples(database_url: str | None, folder: Path, workspace: Path) -> list[str]:
    """The names of the workflows added; a file that is not a valid workflow is skipped."""
    workflows = []
    for path in sorted(folder.glob("*.json")):
        try:
            workflows.append(decode_workflow(path.read_bytes()))
        except WorkflowInvalid:
            continue
    data = folder / "data"
    if data.is_dir():
        workspace.mkdir(parents=True, exist_ok=True)
        for source in sorted(data.iterdir()):
            target = workspace / source.name
            if source.is_file() and not target.exists():
                shutil.copyfile(source, target)
    return asyncio.run(_add_missing(database_url, workflows))


async def _add_missing(database_url: str | None, workflows: list[Workflow]) -> list[str]:
    database = await Database.connect(database_url)
    try:
        store = Store(database)
        page = await store.list_workflows(limit=MAX_LISTED)
        known = {item["name"] for item in page.items}
        added = []
        for workflow in workflows:
            if workflow.name not in known:
                await store.create_workflow(workflow)
                known.add(workflow.name)
                added.append(workflow.name)
    finally:
        await database.close()
    return added

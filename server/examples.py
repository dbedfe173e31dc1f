"""`nodeloom serve --examples DIR`: the example workflows in DIR are added to the database (those
whose name no stored workflow has yet), and their data files (DIR/data/*) are copied into the
workspace unless a file of that name is there already. Nothing stored is ever replaced.
A folder of data files (DIR/data/handbook/) is copied likewise and becomes a keyword collection
of its name holding its files (when no collection has that name), for the examples that
retrieve from one.

Each example is stored under an id made from its file's name (`greeting.json`: `wf_greeting`),
when no workflow has that id yet, so that an example can run another as a body."""

from __future__ import annotations

import asyncio
import re
import shutil
from pathlib import Path

from engine.documents.document import Workflow, decode_workflow
from engine.errors import NotFound, WorkflowInvalid
from engine.knowledge.service import Knowledge
from engine.storage.database import Database
from engine.storage.repository import Store

MAX_LISTED = 10_000


def seed_examples(database_url: str | None, folder: Path, workspace: Path) -> list[str]:
    """The names of the workflows added; a file that is not a valid workflow is skipped."""
    workflows = []
    for path in sorted(folder.glob("*.json")):
        try:
            workflows.append((example_id(path), decode_workflow(path.read_bytes())))
        except WorkflowInvalid:
            continue
    data = folder / "data"
    collections = []
    if data.is_dir():
        workspace.mkdir(parents=True, exist_ok=True)
        for source in sorted(data.iterdir()):
            target = workspace / source.name
            if source.is_file() and not target.exists():
                shutil.copyfile(source, target)
            elif source.is_dir():
                shutil.copytree(source, target, dirs_exist_ok=True)
                collections.append(source.name)
    return asyncio.run(_add_missing(database_url, workflows, collections, workspace))


def example_id(path: Path) -> str:
    """The id an example is stored under: ``wf_`` and its file's name (``-`` as ``_``)."""
    return "wf_" + re.sub(r"[^A-Za-z0-9]", "_", path.stem)


async def _add_missing(
    database_url: str | None,
    workflows: list[tuple[str, Workflow]],
    collections: list[str],
    workspace: Path,
) -> list[str]:
    database = await Database.connect(database_url)
    try:
        await _add_collections(Knowledge(database, None, workspace=workspace), collections)
        store = Store(database)
        page = await store.list_workflows(limit=MAX_LISTED)
        known = {item["name"] for item in page.items}
        ids = {item["id"] for item in page.items}
        added = []
        for workflow_id, workflow in workflows:
            if workflow.name not in known:
                stable = workflow_id if workflow_id not in ids else None
                await store.create_workflow(workflow, workflow_id=stable)
                known.add(workflow.name)
                added.append(workflow.name)
    finally:
        await database.close()
    return added


async def _add_collections(knowledge: Knowledge, names: list[str]) -> None:
    """A keyword collection per data folder not yet one, indexing the folder's files."""
    try:
        for name in names:
            try:
                await knowledge.get(name, owner_id=None)
                continue
            except NotFound:
                pass
            collection = await knowledge.create(name, owner_id=None)
            job = await knowledge.add(collection.id, [f"{name}/*"], owner_id=None)
            await knowledge.wait(job.id)
    finally:
        await knowledge.close()

"""Stored runs: counting a table's rows, and a run whose workflow was deleted since."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from engine.documents.document import Workflow
from engine.records import RunRecord
from engine.runs.service import RunService
from engine.storage.database import Database


async def count(database: Database, table: Any) -> int:
    async with database.engine.connect() as connection:
        return int(await connection.scalar(select(func.count()).select_from(table)) or 0)


async def deleted_since(service: RunService, document: Workflow) -> RunRecord:
    """A run of ``document`` that finished in this process (a rerun of it does not read it),
    deleted since with its workflow."""
    saved = await service.store.create_workflow(document)
    parent = await service.execute(document, workflow_id=saved.id, workflow_version=1)
    await service.store.delete_workflow(saved.id)  # its runs go with it
    return parent

"""Reading and writing workflows: their numbered versions and the editor's view state."""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.documents.document import Workflow, to_builtins
from engine.errors import Conflict, NotFound
from engine.records import Page, WorkflowRecord
from engine.storage.database import Database
from engine.storage.keys import decode_cursor, encode_cursor, keyset_page, new_id, now
from engine.storage.tables import (
    RunRow,
    UserRow,
    ViewStateRow,
    WorkflowRow,
    WorkflowVersionRow,
)

__all__ = ["CURRENT_VERSION", "WorkflowQueries"]

# A workflow's current version and owner, read on PostgreSQL for every run started by id.
CURRENT_VERSION = "SELECT version, owner_id FROM workflows WHERE id = $1"
SCAN = 100  # rows read at a time while a search looks for a page of matches


class WorkflowQueries:
    """The workflow half of `engine.storage.repository.Store`; each method is its own
    transaction."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self.sessions = async_sessionmaker(database.engine, expire_on_commit=False)
        # On SQLite, workflows are changed only by the server's process (through this store):
        # it remembers their current versions (and owners; None once deleted), sparing a
        # query for every run started. On PostgreSQL, other servers may change them.
        self._versions: dict[str, tuple[int, str | None] | None] | None = (
            {} if database.dialect == "sqlite" else None
        )

    def _remember(self, workflow_id: str, version: int | None, owner_id: str | None) -> None:
        """Note a workflow's current version (None: deleted). A version only goes up, so an
        answer read before a save cannot undo what the save noted."""
        if self._versions is None:
            return
        if version is None:
            self._versions[workflow_id] = None
        elif workflow_id not in self._versions:
            self._versions[workflow_id] = (version, owner_id)
        else:
            known = self._versions[workflow_id]
            if known is not None and version > known[0]:
                self._versions[workflow_id] = (version, owner_id)

    # -- workflows ------------------------------------------------------------------------

    async def create_workflow(
        self, workflow: Workflow, *, owner_id: str | None = None, workflow_id: str | None = None
    ) -> WorkflowRecord:
        """Store a new workflow, under ``workflow_id`` when given (the shipped examples: other
        documents name them), else a new id."""
        stamp = now()
        row = WorkflowRow(
            id=workflow_id or new_id("wf"),
            owner_id=owner_id,
            name=workflow.name,
            version=1,
            created_at=stamp,
            updated_at=stamp,
        )
        async with self.sessions.begin() as session:
            session.add(row)
            await session.flush()
            session.add(
                WorkflowVersionRow(
                    workflow_id=row.id, version=1, document=to_builtins(workflow), created_at=stamp
                )
            )
        self._remember(row.id, 1, owner_id)
        return _workflow_record(row, to_builtins(workflow))

    async def save_workflow(
        self,
        workflow_id: str,
        workflow: Workflow,
        *,
        expected_version: int | None,
        owner_id: str | None = None,
    ) -> WorkflowRecord:
        """Store a new version; `Conflict` when ``expected_version`` is not the current one."""
        stamp = now()
        async with self.sessions.begin() as session:
            row = await self._workflow_row(session, workflow_id, owner_id, lock=True)
            if expected_version is not None and expected_version != row.version:
                raise Conflict(
                    f"workflow {workflow_id} is at version {row.version}, "
                    f"not {expected_version}: reload it and apply your change again"
                )
            row.version += 1
            row.name = workflow.name
            row.updated_at = stamp
            session.add(
                WorkflowVersionRow(
                    workflow_id=row.id,
                    version=row.version,
                    document=to_builtins(workflow),
                    created_at=stamp,
                )
            )
        self._remember(row.id, row.version, row.owner_id)
        return _workflow_record(row, to_builtins(workflow))

    async def get_workflow(
        self, workflow_id: str, version: int | None = None, *, owner_id: str | None = None
    ) -> WorkflowRecord:
        async with self.sessions() as session:
            row = await self._workflow_row(session, workflow_id, owner_id)
            wanted = version or row.version
            document = await session.scalar(
                select(WorkflowVersionRow.document).where(
                    WorkflowVersionRow.workflow_id == workflow_id,
                    WorkflowVersionRow.version == wanted,
                )
            )
            if document is None:
                raise NotFound(f"workflow {workflow_id} has no version {wanted}")
        record = _workflow_record(row, document)
        record.version = wanted
        return record

    async def list_workflows(
        self, *, owner_id: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> Page:
        query = select(WorkflowRow)
        if owner_id is not None:
            query = query.where(WorkflowRow.owner_id == owner_id)
        rows, next_cursor = await keyset_page(
            self.sessions,
            query,
            WorkflowRow.updated_at,
            WorkflowRow.id,
            limit=limit,
            cursor=cursor,
        )
        items = [
            {
                "id": r.id,
                "name": r.name,
                "version": r.version,
                "created_at": r.created_at,
                "updated_at": r.updated_at,
            }
            for r in rows
        ]
        return Page(items=items, next_cursor=next_cursor)

    async def workflow_summaries(
        self,
        *,
        owner_id: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
        search: str | None = None,
        tag: str | None = None,
    ) -> Page:
        """The workflows page: each workflow's name, description, tags, node count and last
        run, most recently saved first; ``search`` (in the name and description, any case) and
        ``tag`` narrow it. The document of each current version is read to say so."""
        query = select(WorkflowRow, WorkflowVersionRow.document).join(
            WorkflowVersionRow,
            and_(
                WorkflowVersionRow.workflow_id == WorkflowRow.id,
                WorkflowVersionRow.version == WorkflowRow.version,
            ),
        )
        if owner_id is not None:
            query = query.where(WorkflowRow.owner_id == owner_id)
        query = query.order_by(WorkflowRow.updated_at.desc(), WorkflowRow.id.desc())
        wanted = search.casefold() if search else None
        found: list[dict[str, Any]] = []
        at = decode_cursor(cursor) if cursor else None
        async with self.sessions() as session:
            while len(found) <= limit:
                batch = query
                if at is not None:
                    batch = batch.where(
                        or_(
                            WorkflowRow.updated_at < at[0],
                            (WorkflowRow.updated_at == at[0]) & (WorkflowRow.id < at[1]),
                        )
                    )
                rows = (await session.execute(batch.limit(SCAN))).all()
                for row, document in rows:
                    item = _summary(row, document)
                    if _matches(item, wanted, tag):
                        found.append(item)
                if len(rows) < SCAN:
                    break
                at = (rows[-1][0].updated_at, rows[-1][0].id)
            found, more = found[:limit], len(found) > limit
            last = await self._last_runs(session, [item["id"] for item in found])
        for item in found:
            item["last_run"] = last.get(item["id"])
        next_cursor = encode_cursor(found[-1]["updated_at"], found[-1]["id"]) if more else None
        return Page(items=found, next_cursor=next_cursor)

    async def _last_runs(
        self, session: AsyncSession, workflow_ids: list[str]
    ) -> dict[str, dict[str, Any]]:
        if not workflow_ids:
            return {}
        newest = (
            select(RunRow.workflow_id, func.max(RunRow.created_at).label("at"))
            .where(RunRow.workflow_id.in_(workflow_ids))
            .group_by(RunRow.workflow_id)
            .subquery()
        )
        rows = await session.execute(
            select(RunRow.workflow_id, RunRow.id, RunRow.status, RunRow.created_at).join(
                newest,
                and_(RunRow.workflow_id == newest.c.workflow_id, RunRow.created_at == newest.c.at),
            )
        )
        return {
            workflow_id: {"id": run_id, "status": status, "created_at": created}
            for workflow_id, run_id, status, created in rows
            if workflow_id is not None
        }

    async def current_version(self, workflow_id: str, *, owner_id: str | None = None) -> int:
        """The workflow's current version, in one light query or none (`NotFound` if not
        theirs)."""
        known: tuple[int, str | None] | None
        if self._versions is not None and workflow_id in self._versions:
            known = self._versions[workflow_id]
        elif self.database.dialect == "postgresql":
            found = await self.database.fetchrow(CURRENT_VERSION, workflow_id)
            known = None if found is None else (int(found["version"]), found["owner_id"])
        else:
            query = select(WorkflowRow.version, WorkflowRow.owner_id).where(
                WorkflowRow.id == workflow_id
            )
            async with self.database.autocommit.connect() as connection:
                found = (await connection.execute(query)).first()
            known = None if found is None else (int(found.version), found.owner_id)
            if known is not None:
                self._remember(workflow_id, *known)
        if known is None or (owner_id is not None and known[1] != owner_id):
            raise NotFound(f"workflow {workflow_id} not found")
        return known[0]

    async def workflow_versions(
        self, workflow_id: str, *, owner_id: str | None = None
    ) -> list[dict[str, Any]]:
        """Newest first, each with when it was saved and by whom: the workflow's owner, who
        alone may save it (None in open local mode)."""
        async with self.sessions() as session:
            row = await self._workflow_row(session, workflow_id, owner_id)
            by = None
            if row.owner_id is not None:
                by = await session.scalar(select(UserRow.name).where(UserRow.id == row.owner_id))
            rows = await session.execute(
                select(WorkflowVersionRow.version, WorkflowVersionRow.created_at)
                .where(WorkflowVersionRow.workflow_id == workflow_id)
                .order_by(WorkflowVersionRow.version.desc())
            )
            return [
                {"version": version, "created_at": created, "saved_by": by}
                for version, created in rows
            ]

    async def delete_workflow(self, workflow_id: str, *, owner_id: str | None = None) -> None:
        async with self.sessions.begin() as session:
            row = await self._workflow_row(session, workflow_id, owner_id)
            await session.delete(row)
        self._remember(workflow_id, None, None)

    async def view_state(
        self, workflow_id: str, *, owner_id: str | None = None
    ) -> dict[str, Any] | None:
        """The editor's view state of a workflow (zoom, pan, selection, panels), if saved."""
        async with self.sessions() as session:
            await self._workflow_row(session, workflow_id, owner_id)
            row = await session.get(ViewStateRow, workflow_id)
            return row.data if row is not None else None

    async def save_view_state(
        self, workflow_id: str, data: dict[str, Any], *, owner_id: str | None = None
    ) -> None:
        async with self.sessions.begin() as session:
            await self._workflow_row(session, workflow_id, owner_id)
            await session.merge(ViewStateRow(workflow_id=workflow_id, data=data, updated_at=now()))

    async def _workflow_row(
        self, session: AsyncSession, workflow_id: str, owner_id: str | None, *, lock: bool = False
    ) -> WorkflowRow:
        query = select(WorkflowRow).where(WorkflowRow.id == workflow_id)
        if lock:
            query = query.with_for_update()
        row = await session.scalar(query)
        if row is None or (owner_id is not None and row.owner_id != owner_id):
            raise NotFound(f"workflow {workflow_id} not found")
        return row


def _summary(row: WorkflowRow, document: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "version": row.version,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
        "description": str(document.get("description") or ""),
        "tags": [str(tag) for tag in document.get("tags") or []],
        "node_count": len(document.get("nodes") or []),
    }


def _matches(item: dict[str, Any], search: str | None, tag: str | None) -> bool:
    if tag is not None and tag not in item["tags"]:
        return False
    text = f"{item['name']}\n{item['description']}".casefold()
    return search is None or all(word in text for word in search.split())


def _workflow_record(row: WorkflowRow, document: dict[str, Any]) -> WorkflowRecord:
    return WorkflowRecord(
        id=row.id,
        version=row.version,
        name=row.name,
        created_at=row.created_at,
        updated_at=row.updated_at,
        document=document,
    )

"""Reading and writing workflows and runs: every query nodeloom makes, in one place."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec
from sqlalchemy import Select, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import defer

from engine.document import Workflow, to_builtins
from engine.errors import Conflict, NotFound
from engine.records import Page, RunRecord, WorkflowRecord
from engine.results import NodeState, PriorResult
from engine.storage.database import Database
from engine.storage.tables import (
    BlobRow,
    EventRow,
    NodeResultRow,
    RunRow,
    ViewStateRow,
    WorkflowRow,
    WorkflowVersionRow,
)


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:20]}"


def now() -> datetime:
    return datetime.now(UTC)


def encode_cursor(stamp: datetime, key: str) -> str:
    return base64.urlsafe_b64encode(f"{stamp.isoformat()}|{key}".encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        stamp, key = base64.urlsafe_b64decode(cursor.encode()).decode().split("|", 1)
        return datetime.fromisoformat(stamp), key
    except ValueError:
        raise NotFound(f"invalid cursor {cursor!r}") from None


async def keyset_page(
    sessions: async_sessionmaker[AsyncSession],
    query: Select[Any],
    stamp: Any,
    key: Any,
    *,
    limit: int,
    cursor: str | None,
) -> tuple[list[Any], str | None]:
    """A page of ``query``'s rows, newest first by (``stamp``, ``key``) and after ``cursor``,
    with the cursor of the next page (None on the last)."""
    query = query.order_by(stamp.desc(), key.desc())
    if cursor:
        at, last = decode_cursor(cursor)
        query = query.where(or_(stamp < at, (stamp == at) & (key < last)))
    async with sessions() as session:
        rows = list(await session.scalars(query.limit(limit + 1)))
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, encode_cursor(getattr(rows[-1], stamp.key), getattr(rows[-1], key.key))


class Store:
    """Queries over one `Database`; each method is its own transaction."""

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
        self, workflow: Workflow, *, owner_id: str | None = None
    ) -> WorkflowRecord:
        stamp = now()
        row = WorkflowRow(
            id=new_id("wf"),
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

    async def current_version(self, workflow_id: str, *, owner_id: str | None = None) -> int:
        """The workflow's current version, in one light query or none (`NotFound` if not
        theirs)."""
        known: tuple[int, str | None] | None
        if self._versions is not None and workflow_id in self._versions:
            known = self._versions[workflow_id]
        else:
            query = select(WorkflowRow.version, WorkflowRow.owner_id).where(
                WorkflowRow.id == workflow_id
            )
            async with self.database.engine.connect() as connection:
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
        async with self.sessions() as session:
            await self._workflow_row(session, workflow_id, owner_id)
            rows = await session.execute(
                select(WorkflowVersionRow.version, WorkflowVersionRow.created_at)
                .where(WorkflowVersionRow.workflow_id == workflow_id)
                .order_by(WorkflowVersionRow.version.desc())
            )
            return [{"version": version, "created_at": created} for version, created in rows]

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

    # -- runs -----------------------------------------------------------------------------

    async def insert_run(self, row: RunRow) -> None:
        async with self.sessions.begin() as session:
            session.add(row)

    async def update_run(self, run_id: str, **values: Any) -> None:
        async with self.sessions.begin() as session:
            await session.execute(update(RunRow).where(RunRow.id == run_id).values(**values))

    async def run_row(
        self, run_id: str, *, owner_id: str | None = None, snapshot: bool = True
    ) -> RunRow:
        """A run's row; ``snapshot=False`` leaves its document unread (do not touch it then)."""
        async with self.sessions() as session:
            options = () if snapshot else (defer(RunRow.snapshot, raiseload=True),)
            row = await session.get(RunRow, run_id, options=options)
        if row is None or (owner_id is not None and row.owner_id != owner_id):
            raise NotFound(f"run {run_id} not found")
        return row

    async def get_run(self, run_id: str, *, owner_id: str | None = None) -> RunRecord:
        row = await self.run_row(run_id, owner_id=owner_id)
        states = await self.node_states(run_id)
        return run_record(row, states)

    async def node_states(self, run_id: str) -> dict[str, NodeState]:
        """Every committed node result of a run: its own rows, and the results it took over by
        reference from the runs that computed them."""
        started_at, own, taken, blobs = await self._results(run_id, NodeResultRow.__table__.c)
        states = {row.node_id: _state(row, blobs) for row in own}
        for row in taken:
            states[row.node_id] = NodeState(
                status="cached",
                reason=f"reused from run {row.run_id}",
                cache_key=row.cache_key,
                output=_output(row, blobs),
                started_at=started_at,
                finished_at=started_at,
                duration_ms=0.0,
                digests=row.digests,
                origin_run_id=row.run_id,
            )
        return states

    async def prior_results(self, run_id: str) -> dict[str, PriorResult]:
        """What a rerun of ``run_id`` may take over: each result it has, with the run that
        computed it (reading only what that needs)."""
        c = NodeResultRow.__table__.c
        columns = [
            c.run_id,
            c.node_id,
            c.status,
            c.cache_key,
            c.output,
            c.output_blob,
            c.digests,
            c.origin_run_id,
        ]
        _, own, taken, blobs = await self._results(run_id, columns)
        priors = {}
        for row in (*own, *taken):
            if row.status not in ("succeeded", "cached") or not row.cache_key:
                continue
            origin = row.origin_run_id or row.run_id
            priors[row.node_id] = PriorResult(
                run_id=origin,
                cache_key=row.cache_key,
                output=_output(row, blobs) or {},
                digests=row.digests or {},
                reason=f"reused from run {origin}",
            )
        return priors

    async def _results(
        self, run_id: str, columns: Any
    ) -> tuple[datetime | None, list[Any], list[Any], dict[str, Any]]:
        """A run's start, its own result rows, the rows of results it took over by reference,
        and the large outputs of both, by digest."""
        table = NodeResultRow.__table__
        async with self.sessions() as session:
            run = (
                await session.execute(
                    select(RunRow.reused, RunRow.started_at).where(RunRow.id == run_id)
                )
            ).first()
            own = list(await session.execute(select(*columns).where(table.c.run_id == run_id)))
            reused: dict[str, str] = run.reused if run else {}
            taken = []
            if reused:
                found = await session.execute(
                    select(*columns).where(
                        table.c.run_id.in_(set(reused.values())), table.c.node_id.in_(reused)
                    )
                )
                taken = [row for row in found if reused.get(row.node_id) == row.run_id]
            wanted = {row.output_blob for row in (*own, *taken) if row.output_blob}
            blobs = {}
            if wanted:
                found = await session.execute(
                    select(BlobRow.digest, BlobRow.data).where(BlobRow.digest.in_(wanted))
                )
                blobs = {digest: msgspec.json.decode(data) for digest, data in found}
        return (run.started_at if run else None), own, taken, blobs

    async def list_runs(
        self,
        *,
        workflow_id: str | None = None,
        status: str | None = None,
        owner_id: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page:
        query = select(RunRow)
        if workflow_id is not None:
            query = query.where(RunRow.workflow_id == workflow_id)
        if status is not None:
            query = query.where(RunRow.status == status)
        if owner_id is not None:
            query = query.where(RunRow.owner_id == owner_id)
        rows, next_cursor = await keyset_page(
            self.sessions, query, RunRow.created_at, RunRow.id, limit=limit, cursor=cursor
        )
        return Page(items=[run_record(row, {}) for row in rows], next_cursor=next_cursor)

    async def tree_rows(self, root_run_id: str) -> list[RunRow]:
        async with self.sessions() as session:
            return list(
                await session.scalars(
                    select(RunRow)
                    .where(RunRow.root_run_id == root_run_id)
                    .order_by(RunRow.created_at, RunRow.id)
                )
            )

    async def running_rows(self) -> list[RunRow]:
        async with self.sessions() as session:
            return list(await session.scalars(select(RunRow).where(RunRow.status == "running")))

    async def heartbeat(self, run_ids: Sequence[str], process: str) -> None:
        if not run_ids:
            return
        async with self.sessions.begin() as session:
            await session.execute(
                update(RunRow)
                .where(RunRow.id.in_(run_ids), RunRow.owner_process == process)
                .values(heartbeat_at=now())
            )

    async def mark_interrupted(self, run_id: str, *, process: str | None) -> bool:
        """Running → interrupted, only if still owned by ``process`` (a guard against races)."""
        async with self.sessions.begin() as session:
            result = await session.execute(
                update(RunRow)
                .where(
                    RunRow.id == run_id, RunRow.status == "running", RunRow.owner_process == process
                )
                .values(status="interrupted", error="the process running it stopped")
            )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def claim_for_resume(self, run_id: str, process: str) -> bool:
        async with self.sessions.begin() as session:
            result = await session.execute(
                update(RunRow)
                .where(RunRow.id == run_id, RunRow.status == "interrupted")
                .values(
                    status="running",
                    owner_process=process,
                    heartbeat_at=now(),
                    error=None,
                    finished_at=None,
                )
            )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def last_seq(self, run_id: str) -> int:
        async with self.sessions() as session:
            found = await session.scalar(
                select(func.max(EventRow.seq)).where(EventRow.run_id == run_id)
            )
        return int(found or 0)

    async def events(self, run_id: str, *, after: int = 0) -> list[tuple[int, str]]:
        async with self.sessions() as session:
            rows = await session.execute(
                select(EventRow.seq, EventRow.data)
                .where(EventRow.run_id == run_id, EventRow.seq > after)
                .order_by(EventRow.seq)
            )
            return [(seq, data) for seq, data in rows]

    async def delete_results(self, run_id: str, node_ids: Sequence[str]) -> None:
        async with self.sessions.begin() as session:
            await session.execute(
                delete(NodeResultRow).where(
                    NodeResultRow.run_id == run_id, NodeResultRow.node_id.in_(node_ids)
                )
            )


def _output(row: Any, blobs: dict[str, Any]) -> dict[str, Any] | None:
    output: dict[str, Any] | None = blobs[row.output_blob] if row.output_blob else row.output
    return output


_STATE_COLUMNS = [name for name in NodeState.__struct_fields__ if name != "output"]
_RUN_COLUMNS = [name for name in RunRecord.__struct_fields__ if name != "nodes"]


def _state(row: Any, blobs: dict[str, Any]) -> NodeState:
    """A node_results row (every field of `NodeState` is a column) as a state."""
    return NodeState(
        output=_output(row, blobs), **{name: getattr(row, name) for name in _STATE_COLUMNS}
    )


def run_record(row: RunRow, states: dict[str, NodeState]) -> RunRecord:
    """A runs row (every field of `RunRecord` but the nodes is a column) with its nodes."""
    nodes = {node_id: state.record() for node_id, state in states.items()}
    return RunRecord(nodes=nodes, **{name: getattr(row, name) for name in _RUN_COLUMNS})


def _workflow_record(row: WorkflowRow, document: dict[str, Any]) -> WorkflowRecord:
    return WorkflowRecord(
        id=row.id,
        version=row.version,
        name=row.name,
        created_at=row.created_at,
        updated_at=row.updated_at,
        document=document,
    )

"""Reading and writing runs: their rows, node results, events and the run tree. `Store` also has
the workflow queries (engine/storage/workflows.py)."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from engine.documents.document import with_params
from engine.errors import NotFound
from engine.execution.replays import Replay
from engine.execution.results import NodeState, RunStates
from engine.execution.start import RunStart
from engine.records import Page, RunRecord
from engine.storage import priors
from engine.storage.keys import keyset_page, now
from engine.storage.result_rows import state_from_row
from engine.storage.tables import (
    BlobRow,
    CompiledPlanRow,
    EventRow,
    NodeResultRow,
    ReusedResultsRow,
    RunRow,
)
from engine.storage.workflows import WorkflowQueries

__all__ = ["Store", "new_run_row", "run_record"]


class Store(WorkflowQueries):
    """Queries over one `Database`; each method is its own transaction."""

    # -- runs -----------------------------------------------------------------------------

    async def insert_run(self, row: RunRow) -> None:
        async with self.sessions.begin() as session:
            session.add(row)

    async def update_run(self, run_id: str, **values: Any) -> None:
        async with self.sessions.begin() as session:
            await session.execute(update(RunRow).where(RunRow.id == run_id).values(**values))

    async def run_row(self, run_id: str, *, owner_id: str | None = None) -> RunRow:
        async with self.sessions() as session:
            row = await session.get(RunRow, run_id)
        if row is None or (owner_id is not None and row.owner_id != owner_id):
            raise NotFound(f"run {run_id} not found")
        return row

    async def snapshot(self, row: RunRow) -> dict[str, Any]:
        """The exact document a run ran (stored form): its stored document with its param
        overrides applied."""
        return with_params(await self.document(row), row.snapshot_overrides)

    async def document(self, row: RunRow) -> dict[str, Any]:
        """The stored document a run ran, without its param overrides (stored form)."""
        async with self.sessions() as session:
            data = await session.scalar(
                select(BlobRow.data).where(BlobRow.digest == row.snapshot_blob)
            )
        if data is None:
            raise NotFound(f"the document of run {row.id} is not stored")
        document: dict[str, Any] = msgspec.json.decode(data)
        return document

    async def compiled_plan(self, key: str) -> bytes | None:
        """The compiled plan stored under ``key`` (`engine.documents.stored.plan_key`)."""
        async with self.sessions() as session:
            data: bytes | None = await session.scalar(
                select(CompiledPlanRow.data).where(CompiledPlanRow.key == key)
            )
        return data

    async def store_compiled_plan(self, key: str, data: bytes) -> None:
        """Store a compiled plan once; one stored already under ``key`` stays (the same)."""
        insert = (
            postgresql.insert(CompiledPlanRow)
            if self.database.dialect == "postgresql"
            else sqlite.insert(CompiledPlanRow)
        )
        async with self.sessions.begin() as session:
            await session.execute(
                insert.values(key=key, data=data).on_conflict_do_nothing(index_elements=["key"])
            )

    async def get_run(self, run_id: str, *, owner_id: str | None = None) -> RunRecord:
        row = await self.run_row(run_id, owner_id=owner_id)
        states = await self.node_states(run_id)
        return run_record(row, RunStates(states))

    async def node_states(self, run_id: str) -> dict[str, NodeState]:
        """Every committed node result of a run: its own rows, and the results it took over by
        reference from the runs that computed them."""
        started_at, own, taken, blobs = await self._results(run_id, NodeResultRow.__table__.c)
        states = {row.node_id: state_from_row(row, _output(row, blobs)) for row in own}
        for row in taken:
            states[row.node_id] = NodeState.reused(
                row.run_id,
                cache_key=row.cache_key,
                output=_output(row, blobs),
                digests=row.digests,
                at=started_at,
            )
        return states

    async def parent(
        self,
        run_id: str,
        plan_key: Callable[[str], str],
        *,
        owner_id: str | None = None,
        known: Collection[str] = (),
        results: bool = True,
    ) -> priors.Parent:
        """A parent run as its rerun needs it, in one read: its row, stored document, that
        document's compiled plan (stored under ``plan_key(digest)``; neither is read when that
        key is ``known``) and reusable results (unless not ``results``)."""
        return await priors.read_parent(
            self.database, run_id, plan_key, owner_id=owner_id, known=known, results=results
        )

    async def prior_results(self, run_id: str) -> dict[str, NodeState]:
        """What a rerun of ``run_id`` may take over: each result it has, with the run that
        computed it (reading only what that needs, see engine/storage/priors.py)."""
        return await priors.prior_results(self.database, run_id)

    async def replay(self, row: RunRow) -> Replay | None:
        """The replay a stored run is (SPEC §17), with the records it takes; None when it is
        not one."""
        if row.replay_of is None:
            return None
        recorded = await self.prior_results(row.replay_of)
        return Replay(row.replay_of, recorded, on_miss=row.replay_on_miss or "fail")

    async def _results(
        self, run_id: str, columns: Any
    ) -> tuple[datetime | None, list[Any], list[Any], dict[str, Any]]:
        """A run's start, its own result rows, the rows of results it took over by reference,
        and the large outputs of both, by digest."""
        table = NodeResultRow.__table__
        async with self.sessions() as session:
            started_at = await session.scalar(select(RunRow.started_at).where(RunRow.id == run_id))
            own = list(await session.execute(select(*columns).where(table.c.run_id == run_id)))
            references = await session.execute(
                select(ReusedResultsRow.origin_run_id, ReusedResultsRow.nodes).where(
                    ReusedResultsRow.run_id == run_id
                )
            )
            reused = {node_id: origin for origin, nodes in references for node_id in nodes}
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
        return started_at, own, taken, blobs

    async def list_runs(
        self,
        *,
        workflow_id: str | None = None,
        status: str | None = None,
        trigger: str | None = None,
        owner_id: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page:
        """``trigger``: `webhook:hook_…` exactly, or a kind (`webhook`) for all of its kind."""
        query = select(RunRow)
        if workflow_id is not None:
            query = query.where(RunRow.workflow_id == workflow_id)
        if status is not None:
            query = query.where(RunRow.status == status)
        if trigger is not None and ":" in trigger:
            query = query.where(RunRow.trigger == trigger)
        elif trigger is not None:
            query = query.where(
                (RunRow.trigger == trigger)
                | RunRow.trigger.startswith(f"{trigger}:", autoescape=True)
            )
        if owner_id is not None:
            query = query.where(RunRow.owner_id == owner_id)
        rows, next_cursor = await keyset_page(
            self.sessions, query, RunRow.created_at, RunRow.id, limit=limit, cursor=cursor
        )
        return Page(items=[run_record(row, RunStates({})) for row in rows], next_cursor=next_cursor)

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

    async def pin(self, run_id: str, *, pinned: bool, owner_id: str | None = None) -> None:
        """Pin the run as a test case of its workflow (SPEC §17), or unpin it."""
        await self.run_row(run_id, owner_id=owner_id)  # NotFound unless theirs
        await self.update_run(run_id, pinned_at=now() if pinned else None)

    async def pinned(
        self, workflow_ids: Sequence[str] = (), *, owner_id: str | None = None
    ) -> list[RunRow]:
        """The pinned runs (of ``workflow_ids``, else of every workflow), oldest pin first."""
        query = select(RunRow).where(RunRow.pinned_at.is_not(None))
        if workflow_ids:
            query = query.where(RunRow.workflow_id.in_(workflow_ids))
        if owner_id is not None:
            query = query.where(RunRow.owner_id == owner_id)
        async with self.sessions() as session:
            return list(await session.scalars(query.order_by(RunRow.pinned_at, RunRow.id)))

    async def claim_for_resume(
        self, run_id: str, process: str, *, status: str = "interrupted"
    ) -> bool:
        """Take the run, ``status`` (interrupted, or waiting for an answer), to go on with it
        in ``process``; False when another process took it first."""
        async with self.sessions.begin() as session:
            result = await session.execute(
                update(RunRow)
                .where(RunRow.id == run_id, RunRow.status == status)
                .values(
                    status="running",
                    owner_process=process,
                    heartbeat_at=now(),
                    error=None,
                    finished_at=None,
                    priors=None,  # it goes on: its end stores them again
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


_RUN_COLUMNS = [name for name in RunRecord.__struct_fields__ if name != "nodes"]


def run_record(row: RunRow, states: RunStates) -> RunRecord:
    """A runs row (every field of `RunRecord` but the nodes is a column) with its nodes."""
    return RunRecord(nodes=states.records(), **{name: getattr(row, name) for name in _RUN_COLUMNS})


def new_run_row(start: RunStart, process: str) -> RunRow:
    """The row of a new run that ``process`` starts now."""
    if start.snapshot is None:
        raise ValueError(f"run {start.id} has no snapshot to be stored with")
    stamp = now()
    return RunRow(
        id=start.id,
        workflow_id=start.workflow_id,
        workflow_version=start.workflow_version,
        workflow_name=start.plan.workflow.name,
        owner_id=start.owner_id,
        parent_run_id=start.parent_run_id,
        root_run_id=start.root,
        from_node=start.from_node,
        changes=dict(start.changes),
        trigger=start.trigger,
        replay_of=start.replay_of,
        replay_on_miss=start.replay.on_miss if start.replay is not None else None,
        snapshot_blob=start.snapshot.blob,
        snapshot_overrides={node: dict(given) for node, given in start.snapshot.overrides.items()},
        inputs=dict(start.inputs),
        outputs={},
        status="running",
        error=None,
        created_at=stamp,
        started_at=stamp,
        finished_at=None,
        owner_process=process,
        heartbeat_at=stamp,
        last_seq=0,
    )

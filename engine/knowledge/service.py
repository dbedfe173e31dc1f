"""`Knowledge`: the collections of one process's database, what the API, the CLI, the
`retrieve` node and the `knowledge_search` tool use. Indexing jobs run in the background here;
at start-up (`open`) the jobs a stopped process left running are resumed (files already
indexed unchanged are not done again)."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec
import structlog

from engine.errors import InputsInvalid, NodeloomError
from engine.knowledge.embeddings import Embedder, EmbeddingsUnavailable
from engine.knowledge.indexer import check_glob, index
from engine.knowledge.search import Mode, Searcher
from engine.models.errors import ModelError
from engine.runs.processes import process_name
from engine.settings import owner_workspace
from engine.storage.database import Database
from engine.storage.knowledge import (
    Collection,
    CollectionStore,
    Hit,
    IndexJob,
    StoredDocument,
)

if TYPE_CHECKING:
    from engine.models import ModelService

__all__ = ["NAME_PATTERN", "CollectionView", "Knowledge"]

log = structlog.get_logger("nodeloom.knowledge")

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,127}$")
MIN_CHUNK, MAX_CHUNK = 100, 20_000
MAX_PATHS = 100


class CollectionView(msgspec.Struct, kw_only=True):
    """A collection as the API shows it: its settings, what it holds, its latest indexing."""

    id: str
    name: str
    embedding_model: str | None
    dimensions: int | None
    chunk_size: int
    chunk_overlap: int
    version: int
    documents: int
    failed: int
    chunks: int
    indexing: IndexJob | None
    created_at: datetime
    updated_at: datetime
    files: list[StoredDocument] | None = None


class Knowledge:
    def __init__(
        self,
        database: Database,
        models: ModelService | None,
        *,
        workspace: Path,
        lease_timeout_s: float = 30.0,
    ) -> None:
        self.store = CollectionStore(database)
        self.embedder = Embedder(models)
        self.searcher = Searcher(self.store, self.embedder)
        self.workspace = workspace
        self.lease_timeout_s = lease_timeout_s
        self.process = process_name()
        self._jobs: dict[str, asyncio.Task[None]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    # -- collections ----------------------------------------------------------------------

    async def create(
        self,
        name: str,
        *,
        owner_id: str | None,
        embedding_model: str | None = None,
        chunk_size: int = 800,
        chunk_overlap: int = 100,
    ) -> Collection:
        """A new collection; an embedding model is tried once (its vectors' size is kept), so
        one that makes no embeddings is refused here with why."""
        if not NAME_PATTERN.match(name):
            raise InputsInvalid(f"name: {name!r} must match {NAME_PATTERN.pattern}")
        if not MIN_CHUNK <= chunk_size <= MAX_CHUNK:
            raise InputsInvalid(
                f"chunk_size: {chunk_size} is not between {MIN_CHUNK} and {MAX_CHUNK}"
            )
        if not 0 <= chunk_overlap <= chunk_size // 2:
            raise InputsInvalid(
                f"chunk_overlap: {chunk_overlap} is not between 0 and half the chunk size"
            )
        dimensions = None
        if embedding_model is not None:
            try:
                probe = await self.embedder.embed(embedding_model, ["embedding probe"])
            except EmbeddingsUnavailable as exc:
                raise EmbeddingsUnavailable(f"embedding_model: {exc.detail}") from None
            except ModelError as exc:
                raise EmbeddingsUnavailable(
                    f"embedding_model: model {embedding_model!r} made no embeddings: {exc.detail}"
                ) from None
            dimensions = int(probe.shape[1])
        return await self.store.create(
            name,
            owner_id=owner_id,
            embedding_model=embedding_model,
            dimensions=dimensions,
            chunk_size=chunk_size,
            chunk_overlap=chunk_overlap,
        )

    async def get(self, key: str, *, owner_id: str | None) -> Collection:
        return await self.store.get(key, owner_id=owner_id)

    async def view(self, collection: Collection, *, files: bool = False) -> CollectionView:
        # The job first: once it shows done, what it indexed is what the counts below read.
        indexing = await self.store.latest_job(collection.id)
        collection = await self.store.get(collection.id, owner_id=None)
        counts = await self.store.counts(collection.id)
        documents = await self.store.documents(collection.id) if files else None
        return CollectionView(
            id=collection.id,
            name=collection.name,
            embedding_model=collection.embedding_model,
            dimensions=collection.dimensions,
            chunk_size=collection.chunk_size,
            chunk_overlap=collection.chunk_overlap,
            version=collection.version,
            documents=counts["documents"],
            failed=counts["failed"],
            chunks=counts["chunks"],
            indexing=indexing,
            created_at=collection.created_at,
            updated_at=collection.updated_at,
            files=None if documents is None else sorted(documents.values(), key=_by_source),
        )

    async def delete(self, key: str, *, owner_id: str | None) -> None:
        collection = await self.store.get(key, owner_id=owner_id)
        for job_id, task in list(self._jobs.items()):
            if task.get_name() == collection.id:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                self._jobs.pop(job_id, None)
        await self.store.delete(collection.id, owner_id=owner_id)

    # -- indexing -------------------------------------------------------------------------

    async def add(self, key: str, paths: list[str], *, owner_id: str | None) -> IndexJob:
        """Start indexing the workspace files ``paths`` (globs) match; the job, running."""
        collection = await self.store.get(key, owner_id=owner_id)
        if not paths or len(paths) > MAX_PATHS or not all(paths):
            raise InputsInvalid(f"paths: give 1 to {MAX_PATHS} workspace globs, none empty")
        for position, pattern in enumerate(paths):
            try:
                check_glob(pattern)
            except NodeloomError as exc:
                raise type(exc)(f"paths/{position}: {exc.detail}") from None
        job = await self.store.create_job(collection.id, list(paths), self.process)
        self._start(job, collection)
        return job

    def _start(self, job: IndexJob, collection: Collection) -> None:
        task = asyncio.create_task(self._run(job, collection), name=collection.id)
        self._jobs[job.id] = task
        task.add_done_callback(lambda _: self._jobs.pop(job.id, None))

    async def _run(self, job: IndexJob, collection: Collection) -> None:
        workspace = owner_workspace(self.workspace, collection.owner_id)
        lock = self._locks.setdefault(collection.id, asyncio.Lock())
        async with lock:
            try:
                # The settings as they are now (another job may have run since it was read).
                collection = await self.store.get(collection.id, owner_id=None)
                progress = await index(job, collection, workspace, self.store, self.embedder)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.exception("indexing failed", collection=collection.id, job=job.id)
                latest = await self.store.job(job.id)
                reason = exc.detail if isinstance(exc, NodeloomError) else repr(exc)
                await self.store.update_job(
                    job.id, {**latest.progress, "error": reason}, status="failed"
                )
                return
        await self.store.analyse()
        await self.store.update_job(job.id, progress, status="done")

    async def wait(self, job_id: str) -> IndexJob:
        """The job once it has ended (when it runs in this process)."""
        task = self._jobs.get(job_id)
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(task)
        return await self.store.job(job_id)

    # -- search ---------------------------------------------------------------------------

    async def search(
        self,
        key: str,
        query: str,
        *,
        owner_id: str | None,
        k: int = 5,
        mode: Mode | None = None,
        sources: str | None = None,
    ) -> list[Hit]:
        collection = await self.store.get(key, owner_id=owner_id)
        return await self.searcher.search(collection, query, k=k, mode=mode, sources=sources)

    # -- lifecycle ------------------------------------------------------------------------

    async def open(self) -> list[str]:
        """Resume the jobs whose process stopped (none updated for the lease timeout); their
        ids."""
        resumed = []
        idle = timedelta(seconds=self.lease_timeout_s)
        for job in await self.store.abandoned_jobs(idle):
            if not await self.store.take_over(job, self.process):
                continue
            collection = await self.store.get(job.collection_id, owner_id=None)
            self._start(job, collection)
            resumed.append(job.id)
        return resumed

    async def close(self) -> None:
        """Stop the jobs running here, marked `interrupted` (the next server to start resumes
        them), and free the models."""
        jobs = list(self._jobs.items())
        for _, task in jobs:
            task.cancel()
        for job_id, task in jobs:
            with contextlib.suppress(asyncio.CancelledError):
                await task
            with contextlib.suppress(Exception):
                latest = await self.store.job(job_id)
                if latest.status == "running":
                    await self.store.update_job(job_id, latest.progress, status="interrupted")
        await self.embedder.close()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Knowledge]:
        """Resume abandoned jobs now and every lease timeout while open; close at the end."""

        async def sweep() -> None:
            while True:
                await asyncio.sleep(self.lease_timeout_s)
                try:
                    await self.open()
                except Exception:
                    log.exception("resuming abandoned indexing jobs failed")

        resumed = await self.open()
        if resumed:
            log.warning("indexing jobs resumed from a previous process", jobs=resumed)
        sweeper = asyncio.create_task(sweep())
        try:
            yield self
        finally:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
            await self.close()


def _by_source(document: StoredDocument) -> str:
    return document.source

"""Collections, their documents and chunks, and the jobs indexing them, as stored (SPEC §14).

Keyword search is the database's own full-text search: FTS5 ranked by bm25 on SQLite, a
``tsvector`` column with a GIN index ranked by ``ts_rank_cd`` on PostgreSQL (migration 0020).
Embeddings are stored beside the chunks as float32 bytes; `vectors` reads them for the
cosine ranking done in memory (engine/knowledge/search.py)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import msgspec
from sqlalchemy import Connection, delete, func, insert, select, text, update
from sqlalchemy.ext.asyncio import async_sessionmaker

from engine.errors import Conflict, NotFound
from engine.knowledge.ranking import fts5_query, tsquery
from engine.storage.database import Database
from engine.storage.keys import new_id, now
from engine.storage.tables import ChunkRow, CollectionRow, IndexJobRow, KnowledgeDocumentRow

__all__ = [
    "Collection",
    "CollectionStore",
    "Hit",
    "IndexJob",
    "NewChunks",
    "StoredDocument",
    "glob_regex",
]

# Any of the terms (see engine/knowledge/ranking.py), within one collection, optionally only
# documents whose source matches a glob.
SQLITE_KEYWORD = (
    "SELECT c.id, c.text, d.source, c.chunk, -bm25(knowledge_fts) AS score "
    "FROM knowledge_fts JOIN knowledge_chunks c ON c.id = knowledge_fts.rowid "
    "JOIN knowledge_documents d ON d.id = c.document_id "
    "WHERE knowledge_fts MATCH :query AND c.collection_id = :collection "
    "AND (:sources IS NULL OR d.source GLOB :sources) "
    "ORDER BY bm25(knowledge_fts) LIMIT :k"
)
POSTGRES_KEYWORD = (
    "SELECT c.id, c.text, d.source, c.chunk, ts_rank_cd(c.tsv, q, 1) AS score "
    "FROM knowledge_chunks c JOIN knowledge_documents d ON d.id = c.document_id, "
    "to_tsquery('english', :query) q "
    "WHERE c.collection_id = :collection AND c.tsv @@ q "
    "AND (CAST(:sources AS text) IS NULL OR d.source ~ CAST(:sources AS text)) "
    "ORDER BY score DESC, c.id LIMIT :k"
)


class Collection(msgspec.Struct, kw_only=True):
    id: str
    name: str
    embedding_model: str | None
    dimensions: int | None
    chunk_size: int
    chunk_overlap: int
    version: int
    created_at: datetime
    updated_at: datetime
    owner_id: str | None = None


class StoredDocument(msgspec.Struct, kw_only=True):
    id: str
    source: str
    digest: str
    status: str
    chunks: int
    error: str | None = None


class IndexJob(msgspec.Struct, kw_only=True):
    id: str
    collection_id: str
    paths: list[str]
    status: str
    progress: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None = None
    driver: str | None = None


class Hit(msgspec.Struct, kw_only=True):
    """A chunk found, with its score in the ranking that found it (higher is better)."""

    id: int
    text: str
    source: str
    chunk: int
    score: float


class NewChunks(msgspec.Struct, kw_only=True):
    """A document's new index: its chunks' text and, with an embedding model, their vectors."""

    texts: list[str]
    vectors: list[bytes] | None = None


class CollectionStore:
    def __init__(self, database: Database) -> None:
        self.database = database
        self.sessions = async_sessionmaker(database.engine, expire_on_commit=False)

    # -- collections ----------------------------------------------------------------------

    async def create(
        self,
        name: str,
        *,
        owner_id: str | None,
        embedding_model: str | None = None,
        dimensions: int | None = None,
        chunk_size: int = 800,
        chunk_overlap: int = 100,
    ) -> Collection:
        """A new, empty collection; `Conflict` when the owner has one of that name."""
        stamp = now()
        row = CollectionRow(
            id=new_id("col"),
            owner_id=owner_id,
            name=name,
            embedding_model=embedding_model,
            dimensions=dimensions,
            chunk_size=chunk_size,
            chunk_overlap=chunk_overlap,
            version=0,
            created_at=stamp,
            updated_at=stamp,
        )
        async with self.sessions.begin() as session:
            taken = await session.scalar(
                select(CollectionRow.id).where(CollectionRow.name == name, _owned_by(owner_id))
            )
            if taken is not None:
                raise Conflict(f"a collection named {name!r} exists already ({taken})")
            session.add(row)
        return _collection(row)

    async def get(self, key: str, *, owner_id: str | None) -> Collection:
        """The collection with id or name ``key``, if ``owner_id`` may see it (else
        `NotFound`, as for a collection that does not exist)."""
        query = select(CollectionRow).where((CollectionRow.id == key) | (CollectionRow.name == key))
        if owner_id is not None:
            query = query.where(CollectionRow.owner_id == owner_id)
        async with self.sessions() as session:
            rows = list(await session.scalars(query))
        row = next((row for row in rows if row.id == key), rows[0] if rows else None)
        if row is None:
            raise NotFound(f"collection {key} not found")
        return _collection(row)

    async def collections(self, *, owner_id: str | None) -> list[Collection]:
        query = select(CollectionRow).order_by(CollectionRow.name)
        if owner_id is not None:
            query = query.where(CollectionRow.owner_id == owner_id)
        async with self.sessions() as session:
            return [_collection(row) for row in await session.scalars(query)]

    async def delete(self, collection_id: str, *, owner_id: str | None) -> None:
        collection = await self.get(collection_id, owner_id=owner_id)

        def work(connection: Connection) -> None:
            for table in (IndexJobRow, ChunkRow, KnowledgeDocumentRow):
                connection.execute(delete(table).where(table.collection_id == collection.id))
            connection.execute(delete(CollectionRow).where(CollectionRow.id == collection.id))

        await self.database.transaction(work)

    async def counts(self, collection_id: str) -> dict[str, int]:
        """``documents`` (indexed), ``failed`` (documents) and ``chunks``."""
        async with self.sessions() as session:
            documents = (
                await session.execute(
                    select(KnowledgeDocumentRow.status, func.count())
                    .where(KnowledgeDocumentRow.collection_id == collection_id)
                    .group_by(KnowledgeDocumentRow.status)
                )
            ).all()
            chunks = await session.scalar(
                select(func.count()).where(ChunkRow.collection_id == collection_id)
            )
        by_status: dict[str, int] = {row[0]: row[1] for row in documents}
        return {
            "documents": by_status.get("indexed", 0),
            "failed": by_status.get("failed", 0),
            "chunks": int(chunks or 0),
        }

    # -- documents ------------------------------------------------------------------------

    async def documents(self, collection_id: str) -> dict[str, StoredDocument]:
        """The collection's documents by source."""
        query = select(KnowledgeDocumentRow).where(
            KnowledgeDocumentRow.collection_id == collection_id
        )
        async with self.sessions() as session:
            return {
                row.source: StoredDocument(
                    id=row.id,
                    source=row.source,
                    digest=row.digest,
                    status=row.status,
                    chunks=row.chunks,
                    error=row.error,
                )
                for row in await session.scalars(query)
            }

    async def put_document(
        self,
        collection_id: str,
        source: str,
        digest: str,
        chunks: NewChunks | None,
        *,
        error: str | None = None,
    ) -> None:
        """Index ``source`` anew, in one transaction: its old chunks go, ``chunks`` come (or,
        with an ``error``, none: the document is recorded as failed), and the collection's
        version goes up."""

        def work(connection: Connection) -> None:
            documents = KnowledgeDocumentRow
            old = connection.execute(
                select(documents.id).where(
                    documents.collection_id == collection_id, documents.source == source
                )
            ).scalar()
            if old is not None:
                connection.execute(delete(ChunkRow).where(ChunkRow.document_id == old))
                connection.execute(delete(documents).where(documents.id == old))
            document_id = new_id("kdoc")
            connection.execute(
                insert(documents).values(
                    id=document_id,
                    collection_id=collection_id,
                    source=source,
                    digest=digest,
                    status="failed" if error is not None else "indexed",
                    error=error,
                    chunks=len(chunks.texts) if chunks else 0,
                    indexed_at=now(),
                )
            )
            if chunks and chunks.texts:
                vectors: list[bytes | None] = (
                    list(chunks.vectors) if chunks.vectors else [None] * len(chunks.texts)
                )
                connection.execute(
                    insert(ChunkRow),
                    [
                        {
                            "collection_id": collection_id,
                            "document_id": document_id,
                            "chunk": index,
                            "text": chunk,
                            "embedding": vector,
                        }
                        for index, (chunk, vector) in enumerate(
                            zip(chunks.texts, vectors, strict=True)
                        )
                    ],
                )
            _bump(connection, collection_id)

        await self.database.transaction(work)

    async def remove_documents(self, collection_id: str, sources: Sequence[str]) -> None:
        """Take ``sources`` out of the collection (their files are gone)."""
        if not sources:
            return

        def work(connection: Connection) -> None:
            documents = KnowledgeDocumentRow
            ids = list(
                connection.execute(
                    select(documents.id).where(
                        documents.collection_id == collection_id,
                        documents.source.in_(list(sources)),
                    )
                ).scalars()
            )
            connection.execute(delete(ChunkRow).where(ChunkRow.document_id.in_(ids)))
            connection.execute(delete(documents).where(documents.id.in_(ids)))
            _bump(connection, collection_id)

        await self.database.transaction(work)

    async def analyse(self) -> None:
        """Bring PostgreSQL's statistics of the chunks up to date after an indexing job, so its
        planner takes the GIN index for a query rather than reading every chunk of a collection
        (autovacuum would, later). SQLite's FTS5 needs nothing."""
        if self.database.dialect == "postgresql":
            async with self.database.autocommit.connect() as connection:
                await connection.execute(text("ANALYZE knowledge_chunks"))

    # -- search ---------------------------------------------------------------------------

    async def keyword(
        self, collection_id: str, terms: Sequence[str], k: int, *, sources: str | None = None
    ) -> list[Hit]:
        """The ``k`` chunks that best match any of ``terms``, best first."""
        if not terms:
            return []
        params: dict[str, Any] = {"collection": collection_id, "k": k}
        if self.database.dialect == "sqlite":
            statement = SQLITE_KEYWORD
            params |= {"query": fts5_query(terms), "sources": sources}
        else:
            statement = POSTGRES_KEYWORD
            params |= {"query": tsquery(terms), "sources": glob_regex(sources) if sources else None}
        async with self.database.autocommit.connect() as connection:
            rows = (await connection.execute(text(statement), params)).all()
        return [
            Hit(id=row[0], text=row[1], source=row[2], chunk=row[3], score=float(row[4]))
            for row in rows
        ]

    async def vectors(self, collection_id: str) -> list[tuple[int, str, bytes]]:
        """Every chunk's id, source and embedding, by id."""
        query = (
            select(ChunkRow.id, KnowledgeDocumentRow.source, ChunkRow.embedding)
            .join(KnowledgeDocumentRow, KnowledgeDocumentRow.id == ChunkRow.document_id)
            .where(ChunkRow.collection_id == collection_id, ChunkRow.embedding.is_not(None))
            .order_by(ChunkRow.id)
        )
        async with self.database.autocommit.connect() as connection:
            return [
                (row[0], row[1], row[2])
                for row in await connection.execute(query)
                if row[2] is not None
            ]

    async def chunks(self, ids: Sequence[int]) -> dict[int, Hit]:
        """The chunks ``ids`` (scored 0), by id."""
        if not ids:
            return {}
        query = (
            select(ChunkRow.id, ChunkRow.text, KnowledgeDocumentRow.source, ChunkRow.chunk)
            .join(KnowledgeDocumentRow, KnowledgeDocumentRow.id == ChunkRow.document_id)
            .where(ChunkRow.id.in_(list(ids)))
        )
        async with self.database.autocommit.connect() as connection:
            rows = (await connection.execute(query)).all()
        return {
            row[0]: Hit(id=row[0], text=row[1], source=row[2], chunk=row[3], score=0.0)
            for row in rows
        }

    # -- indexing jobs --------------------------------------------------------------------

    async def create_job(self, collection_id: str, paths: list[str], driver: str) -> IndexJob:
        stamp = now()
        row = IndexJobRow(
            id=new_id("kjob"),
            collection_id=collection_id,
            paths=paths,
            status="running",
            progress={"total": 0, "done": 0, "failed": 0, "unchanged": 0, "removed": 0},
            driver=driver,
            created_at=stamp,
            updated_at=stamp,
            finished_at=None,
        )
        async with self.sessions.begin() as session:
            session.add(row)
        return _job(row)

    async def update_job(
        self, job_id: str, progress: dict[str, Any], *, status: str | None = None
    ) -> None:
        values: dict[str, Any] = {"progress": progress, "updated_at": now()}
        if status is not None:
            values["status"] = status
            values["finished_at"] = now()
        async with self.sessions.begin() as session:
            await session.execute(
                update(IndexJobRow).where(IndexJobRow.id == job_id).values(**values)
            )

    async def job(self, job_id: str) -> IndexJob:
        async with self.sessions() as session:
            row = await session.get(IndexJobRow, job_id)
        if row is None:
            raise NotFound(f"indexing job {job_id} not found")
        return _job(row)

    async def latest_job(self, collection_id: str) -> IndexJob | None:
        query = (
            select(IndexJobRow)
            .where(IndexJobRow.collection_id == collection_id)
            .order_by(IndexJobRow.created_at.desc())
            .limit(1)
        )
        async with self.sessions() as session:
            row = await session.scalar(query)
        return None if row is None else _job(row)

    async def abandoned_jobs(self, idle: timedelta) -> list[IndexJob]:
        """The jobs a server stopped (`interrupted`) and those still `running` that no process
        has updated for ``idle`` (their process died)."""
        query = select(IndexJobRow).where(
            (IndexJobRow.status == "interrupted")
            | ((IndexJobRow.status == "running") & (IndexJobRow.updated_at < now() - idle))
        )
        async with self.sessions() as session:
            return [_job(row) for row in await session.scalars(query)]

    async def take_over(self, job: IndexJob, driver: str) -> bool:
        """Drive ``job`` from ``driver`` if no one else took it since it was read."""
        async with self.sessions.begin() as session:
            result = await session.execute(
                update(IndexJobRow)
                .where(
                    IndexJobRow.id == job.id,
                    IndexJobRow.status == job.status,
                    IndexJobRow.driver.is_(None)
                    if job.driver is None
                    else IndexJobRow.driver == job.driver,
                )
                .values(status="running", driver=driver, updated_at=now(), finished_at=None)
            )
        return bool(result.rowcount)  # type: ignore[attr-defined]


def _owned_by(owner_id: str | None) -> Any:
    return (
        CollectionRow.owner_id.is_(None) if owner_id is None else CollectionRow.owner_id == owner_id
    )


def _bump(connection: Connection, collection_id: str) -> None:
    connection.execute(
        update(CollectionRow)
        .where(CollectionRow.id == collection_id)
        .values(version=CollectionRow.version + 1, updated_at=now())
    )


def glob_regex(pattern: str) -> str:
    """A glob (``*`` any characters, ``?`` one, ``[…]`` a set) as an anchored POSIX regular
    expression, for PostgreSQL's ``~`` (SQLite has GLOB itself)."""
    out = ["^"]
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "*":
            out.append(".*")
        elif char == "?":
            out.append(".")
        elif char == "[" and "]" in pattern[index + 1 :]:
            end = pattern.index("]", index + 1)
            body = pattern[index + 1 : end]
            body = "^" + body[1:] if body.startswith("!") else body
            out.append("[" + body.replace("\\", "\\\\") + "]")
            index = end
        else:
            out.append("\\" + char if not char.isalnum() else char)
        index += 1
    return "".join(out) + "$"


def _collection(row: CollectionRow) -> Collection:
    return Collection(
        id=row.id,
        name=row.name,
        embedding_model=row.embedding_model,
        dimensions=row.dimensions,
        chunk_size=row.chunk_size,
        chunk_overlap=row.chunk_overlap,
        version=row.version,
        created_at=row.created_at,
        updated_at=row.updated_at,
        owner_id=row.owner_id,
    )


def _job(row: IndexJobRow) -> IndexJob:
    return IndexJob(
        id=row.id,
        collection_id=row.collection_id,
        paths=list(row.paths),
        status=row.status,
        progress=dict(row.progress),
        created_at=row.created_at,
        updated_at=row.updated_at,
        finished_at=row.finished_at,
        driver=row.driver,
    )

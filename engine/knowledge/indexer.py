"""An indexing job: the workspace files its globs match, each read, parsed, chunked, embedded
and stored in one transaction of its own; a file whose content digest is the one indexed is
left as it is, a document whose file is gone is removed, a file that cannot be read is recorded
as failed and the others go on. Its progress is written every `PROGRESS_EVERY_S` (which is also
its heartbeat: a job not updated for the lease timeout is resumed by another server)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import posixpath
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import structlog

from engine.errors import NodeloomError
from engine.knowledge.chunking import chunk_text
from engine.knowledge.embeddings import Embedder
from engine.knowledge.parsing import DocumentUnreadable, document_text
from engine.storage.knowledge import Collection, CollectionStore, IndexJob, NewChunks

__all__ = ["MAX_FILE_BYTES", "PROGRESS_EVERY_S", "GlobInvalid", "check_glob", "expand", "index"]

log = structlog.get_logger("nodeloom.knowledge")

MAX_FILE_BYTES = 64 * 1024 * 1024
PROGRESS_EVERY_S = 0.5
MAX_ERRORS_SHOWN = 50


class GlobInvalid(NodeloomError, ValueError):
    """A glob that is not a path inside the workspace."""


def check_glob(pattern: str) -> None:
    """`GlobInvalid` for a glob that could reach outside the workspace (absolute, or climbing
    with ``..``), as file nodes refuse such paths."""
    normal = posixpath.normpath(pattern.replace("\\", "/")) if pattern else ""
    if (
        not pattern
        or "\x00" in pattern
        or pattern.startswith(("/", "\\"))
        or (len(pattern) > 1 and pattern[1] == ":")
        or normal == ".."
        or normal.startswith("../")
        or ".." in pattern.replace("\\", "/").split("/")
    ):
        raise GlobInvalid(f"path {pattern!r} is outside the workspace folder")


def expand(workspace: Path, patterns: list[str]) -> list[tuple[str, Path]]:
    """The files inside ``workspace`` the globs match, as (workspace-relative POSIX path, file),
    sorted; files that resolve (through a symlink) outside the workspace are left out."""
    root = workspace.resolve()
    found: dict[str, Path] = {}
    for pattern in patterns:
        check_glob(pattern)
        for match in root.glob(pattern):
            target = match.resolve()
            if target.is_file() and target.is_relative_to(root) and target != root:
                found.setdefault(match.relative_to(root).as_posix(), target)
    return sorted(found.items())


def _gone(workspace: Path, sources: list[str]) -> list[str]:
    root = workspace.resolve()
    return [source for source in sources if not (root / source).is_file()]


def _read(path: Path) -> bytes:
    with path.open("rb") as file:
        data = file.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise DocumentUnreadable(f"larger than {MAX_FILE_BYTES} bytes")
    return data


def _chunks(source: str, data: bytes, size: int, overlap: int) -> list[str]:
    return chunk_text(document_text(source, data), size, overlap)


async def index(
    job: IndexJob,
    collection: Collection,
    workspace: Path,
    store: CollectionStore,
    embedder: Embedder,
    *,
    progressed: Callable[[dict[str, Any]], Awaitable[None]] | None = None,
) -> dict[str, Any]:
    """Do ``job`` on ``collection`` (whose files are in ``workspace``); its final progress."""
    progress: dict[str, Any] = {
        "total": 0,
        "done": 0,
        "failed": 0,
        "unchanged": 0,
        "removed": 0,
        "errors": [],
    }
    writer = asyncio.create_task(_keep_writing(store, job.id, progress))
    try:
        files = await asyncio.to_thread(expand, workspace, job.paths)
        progress["total"] = len(files)
        known = await store.documents(collection.id)
        gone = await asyncio.to_thread(_gone, workspace, sorted(known))
        await store.remove_documents(collection.id, gone)
        progress["removed"] = len(gone)
        for source, path in files:
            await _one(
                source,
                path,
                collection=collection,
                known=known,
                store=store,
                embedder=embedder,
                progress=progress,
            )
            progress["done"] += 1
            if progressed is not None:
                await progressed(progress)
    finally:
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writer
    return progress


async def _one(
    source: str,
    path: Path,
    *,
    collection: Collection,
    known: dict[str, Any],
    store: CollectionStore,
    embedder: Embedder,
    progress: dict[str, Any],
) -> None:
    digest = ""
    try:
        data = await asyncio.to_thread(_read, path)
        digest = hashlib.sha256(data).hexdigest()
        prior = known.get(source)
        if prior is not None and prior.digest == digest and prior.status == "indexed":
            progress["unchanged"] += 1
            return
        texts = await asyncio.to_thread(
            _chunks, source, data, collection.chunk_size, collection.chunk_overlap
        )
        vectors = None
        if collection.embedding_model is not None and texts:
            matrix = await embedder.embed(collection.embedding_model, texts)
            vectors = [row.tobytes() for row in matrix]
        await store.put_document(
            collection.id, source, digest, NewChunks(texts=texts, vectors=vectors)
        )
    except (NodeloomError, OSError) as exc:
        reason = exc.detail if isinstance(exc, NodeloomError) else (exc.strerror or str(exc))
        await store.put_document(collection.id, source, digest or "-", None, error=reason)
        progress["failed"] += 1
        if len(progress["errors"]) < MAX_ERRORS_SHOWN:
            progress["errors"].append({"source": source, "error": reason})
        log.info("document not indexed", collection=collection.id, source=source, error=reason)


async def _keep_writing(store: CollectionStore, job_id: str, progress: dict[str, Any]) -> None:
    while True:
        await asyncio.sleep(PROGRESS_EVERY_S)
        try:
            await store.update_job(job_id, dict(progress))
        except Exception:
            log.exception("storing an indexing job's progress failed", job=job_id)

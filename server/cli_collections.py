"""``nodeloom collections create|add|search|list`` (SPEC §14): collections of workspace
documents, on the database and workspace the other commands use. ``add`` indexes in this
process and shows the progress as it goes (a bar on a terminal, a line per file otherwise)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator
from typing import Any

import msgspec
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from engine.knowledge.search import MODES
from engine.knowledge.service import Knowledge
from engine.models import ModelService
from engine.nodes.registry import NodeRegistry
from engine.storage.database import Database
from server.settings import read_settings

__all__ = ["add_command"]

POLL_S = 0.2


def add_command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], db_help: str
) -> None:
    collections = commands.add_parser(
        "collections", help="collections of workspace documents, indexed for search"
    )
    actions = collections.add_subparsers(title="actions", required=True, metavar="ACTION")

    create = actions.add_parser("create", help="create an empty collection")
    create.add_argument("name", metavar="NAME")
    create.add_argument(
        "--embedding-model",
        metavar="MODEL",
        help="a models.toml entry with `embedding = true` (vector and hybrid search)",
    )
    create.add_argument("--chunk-size", type=int, default=800, metavar="CHARS")
    create.add_argument("--chunk-overlap", type=int, default=100, metavar="CHARS")
    create.set_defaults(handler=_create)

    add = actions.add_parser("add", help="index the workspace files globs match, with progress")
    add.add_argument("name", metavar="NAME", help="the collection's name or id")
    add.add_argument("paths", nargs="+", metavar="GLOB", help="workspace globs: 'docs/*.md'")
    add.set_defaults(handler=_add)

    search = actions.add_parser("search", help="the chunks that best answer a query")
    search.add_argument("name", metavar="NAME")
    search.add_argument("query", metavar="QUERY")
    search.add_argument("-k", type=int, default=5, help="how many chunks (default 5)")
    search.add_argument("--mode", choices=MODES, help="default: hybrid with embeddings")
    search.add_argument("--sources", metavar="GLOB", help="only documents matching this glob")
    search.add_argument("--json", action="store_true", help="print the results as JSON")
    search.set_defaults(handler=_search)

    listed = actions.add_parser("list", help="the collections, with what they hold")
    listed.add_argument("--json", action="store_true")
    listed.set_defaults(handler=_list)
    for action in (create, add, search, listed):
        action.add_argument("--db", metavar="URL", help=db_help)


@contextlib.asynccontextmanager
async def _knowledge(args: argparse.Namespace) -> AsyncIterator[Knowledge]:
    settings = read_settings(database_url=args.db)
    database = await Database.connect(settings.database_url)
    models = ModelService.from_env(os.environ)
    knowledge = Knowledge(database, models, workspace=settings.workspace)
    try:
        yield knowledge
    finally:
        await knowledge.close()
        await models.close()
        await database.close()


def _create(args: argparse.Namespace, registry: NodeRegistry) -> int:
    async def create() -> str:
        async with _knowledge(args) as knowledge:
            collection = await knowledge.create(
                args.name,
                owner_id=None,
                embedding_model=args.embedding_model,
                chunk_size=args.chunk_size,
                chunk_overlap=args.chunk_overlap,
            )
            return collection.id

    print(asyncio.run(create()))
    return 0


def _add(args: argparse.Namespace, registry: NodeRegistry) -> int:
    async def add() -> dict[str, Any]:
        async with _knowledge(args) as knowledge:
            job = await knowledge.add(args.name, list(args.paths), owner_id=None)
            waiting = asyncio.ensure_future(knowledge.wait(job.id))
            with _Display(live=sys.stderr.isatty()) as display:
                while not waiting.done():
                    await asyncio.wait([waiting], timeout=POLL_S)
                    display.show((await knowledge.store.job(job.id)).progress)
                final = waiting.result()
                display.show(final.progress)
            return {"status": final.status, **final.progress}

    result = asyncio.run(add())
    for error in result.get("errors", []):
        print(f"failed: {error['source']}: {error['error']}", file=sys.stderr)
    print(
        f"{result['status']}: {result['done']} of {result['total']} files "
        f"({result['unchanged']} unchanged, {result['failed']} failed, "
        f"{result['removed']} removed)"
    )
    return 0 if result["status"] == "done" else 1


class _Display:
    """Indexing progress: a bar on a terminal, else a line each time a file is done."""

    def __init__(self, *, live: bool) -> None:
        self.live = live
        self._progress = Progress(
            TextColumn("indexing"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[failed]} failed"),
            TimeElapsedColumn(),
            transient=True,
        )
        self._task = self._progress.add_task("indexing", total=None, failed=0)
        self._shown = -1

    def __enter__(self) -> _Display:
        if self.live:
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live:
            self._progress.stop()

    def show(self, progress: dict[str, Any]) -> None:
        done, total = progress.get("done", 0), progress.get("total", 0)
        if self.live:
            self._progress.update(
                self._task, completed=done, total=total or None, failed=progress.get("failed", 0)
            )
        elif done != self._shown:
            self._shown = done
            print(f"indexed {done}/{total} files", file=sys.stderr, flush=True)


def _search(args: argparse.Namespace, registry: NodeRegistry) -> int:
    async def search() -> list[dict[str, Any]]:
        async with _knowledge(args) as knowledge:
            hits = await knowledge.search(
                args.name,
                args.query,
                owner_id=None,
                k=args.k,
                mode=args.mode,
                sources=args.sources,
            )
            return [
                {"text": hit.text, "source": hit.source, "chunk": hit.chunk, "score": hit.score}
                for hit in hits
            ]

    results = asyncio.run(search())
    if args.json:
        print(json.dumps({"results": results}, indent=2, ensure_ascii=False))
        return 0
    for number, result in enumerate(results, start=1):
        where = f"chunk {result['chunk']}, score {result['score']:.3f}"
        print(f"[{number}] {result['source']} ({where})")
        print("    " + result["text"].replace("\n", "\n    "))
    return 0


def _list(args: argparse.Namespace, registry: NodeRegistry) -> int:
    async def listed() -> list[dict[str, Any]]:
        async with _knowledge(args) as knowledge:
            found = await knowledge.store.collections(owner_id=None)
            views = [await knowledge.view(collection) for collection in found]
            return [msgspec.to_builtins(view) for view in views]

    views = asyncio.run(listed())
    if args.json:
        print(json.dumps({"items": views}, indent=2, ensure_ascii=False))
        return 0
    for view in views:
        vectors = f", embeddings by {view['embedding_model']}" if view["embedding_model"] else ""
        print(
            f"{view['name']} ({view['id']}): {view['documents']} documents, {view['chunks']} "
            f"chunks, version {view['version']}{vectors}"
        )
    return 0

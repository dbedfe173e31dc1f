"""Knowledge (SPEC §14): retrieval quality on a labelled set, and indexing and query times at
10,000 chunks, on SQLite and PostgreSQL.

    .venv/bin/python bench/knowledge.py           # both databases, 10,000 chunks
    .venv/bin/python bench/knowledge.py --quick   # SQLite only, 1,000 chunks (the smoke test)

Quality: the documents of tests/support/knowledge_set.py (one Markdown file each) indexed into a
keyword collection through the real indexing job; for each labelled question, whether the
document that answers it is among the 5 chunks nodeloom's keyword search returns (recall@5).
The reference is bm25s over the same chunks (read back from the database), tokenised with its
English stop words. Targets: recall@5 >= 0.9, and >= 0.95x bm25s's.

Scale: synthetic Markdown files of 20 paragraphs (one chunk each; made-up words with Zipf's
frequencies) indexed by the job (keyword only: the indexing target is for keyword collections);
then queries of three words. Hybrid
queries run against a collection holding the same chunks with random unit vectors stored
beside them (embedding 10,000 chunks with a model is not what is measured, and the query's
embedding is excluded, as the target says): the figure is the database's keyword search, the
cosine ranking over the stored vectors and the fusion. Targets: indexing <= 30 s on SQLite;
query p50 <= 20 ms keyword and <= 50 ms hybrid.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from engine.knowledge.search import Mode  # noqa: E402
from engine.knowledge.service import Knowledge  # noqa: E402
from engine.storage.database import Database  # noqa: E402
from engine.storage.knowledge import NewChunks  # noqa: E402
from tests.support.knowledge_set import DOCUMENTS, QUESTIONS, write_documents  # noqa: E402

RECALL_TARGET, RATIO_TARGET = 0.9, 0.95
INDEX_TARGET_S, KEYWORD_P50_MS, HYBRID_P50_MS = 30.0, 20.0, 50.0
DIMENSIONS = 640  # the embedded Gemma's
PARAGRAPHS = 20
SYLLABLES = ["ka", "lo", "mi", "ren", "tu", "sa", "vel", "dor", "qui", "zan", "po", "ith",
             "mar", "els", "gon", "fa", "rdu", "ny", "sho", "bex"]
# A vocabulary of 4,000 made-up words used with Zipf's frequencies, as words are in text; the
# queries use words past the 100 most frequent (as a question's stop words are dropped).
WORDS = sorted({a + b + c for a in SYLLABLES for b in SYLLABLES for c in SYLLABLES})[:4000]
WEIGHTS = [1 / rank for rank in range(1, len(WORDS) + 1)]
QUERY_WORDS = WORDS[100:]


def paragraph(rng: random.Random, length: int = 70) -> str:
    return " ".join(rng.choices(WORDS, WEIGHTS, k=length)).capitalize() + "."


def write_synthetic(folder: Path, chunks: int) -> None:
    rng = random.Random(7)
    folder.mkdir(parents=True)
    for number in range(chunks // PARAGRAPHS):
        body = "\n\n".join(paragraph(rng) for _ in range(PARAGRAPHS))
        (folder / f"doc{number:05d}.md").write_text(body + "\n", encoding="utf-8")


async def indexed(knowledge: Knowledge, name: str, glob: str) -> tuple[str, float]:
    collection = await knowledge.create(name, owner_id=None)
    started = time.perf_counter()
    job = await knowledge.add(collection.id, [glob], owner_id=None)
    finished = await knowledge.wait(job.id)
    elapsed = time.perf_counter() - started
    assert finished.status == "done", finished
    return collection.id, elapsed


async def quality(knowledge: Knowledge, database: Database) -> tuple[float, float]:
    """nodeloom's keyword recall@5 and bm25s's on the same chunks."""
    import bm25s  # noqa: PLC0415 - a reference only

    collection_id, _ = await indexed(knowledge, "quality", "labelled/*.md")
    slugs = {f"labelled/{slug}.md": slug for slug, _, _ in DOCUMENTS}
    found = 0
    for question, slug in QUESTIONS:
        hits = await knowledge.search(collection_id, question, owner_id=None, k=5, mode="keyword")
        found += any(slugs[hit.source] == slug for hit in hits)
    rows = await knowledge.store.vectors(collection_id)  # none: a keyword collection
    assert not rows
    chunks = await _all_chunks(knowledge, database, collection_id)
    retriever = bm25s.BM25()
    corpus = bm25s.tokenize([text for _, text in chunks], stopwords="en", show_progress=False)
    retriever.index(corpus, show_progress=False)
    reference = 0
    for question, slug in QUESTIONS:
        tokens = bm25s.tokenize([question], stopwords="en", show_progress=False)
        results, _ = retriever.retrieve(tokens, k=5, show_progress=False)
        reference += any(slugs[chunks[int(index)][0]] == slug for index in results[0])
    return found / len(QUESTIONS), reference / len(QUESTIONS)


async def _all_chunks(
    knowledge: Knowledge, database: Database, collection_id: str
) -> list[tuple[str, str]]:
    from sqlalchemy import select  # noqa: PLC0415

    from engine.storage.tables import ChunkRow, KnowledgeDocumentRow  # noqa: PLC0415

    query = (
        select(KnowledgeDocumentRow.source, ChunkRow.text)
        .join(KnowledgeDocumentRow, KnowledgeDocumentRow.id == ChunkRow.document_id)
        .where(ChunkRow.collection_id == collection_id)
        .order_by(ChunkRow.id)
    )
    async with database.engine.connect() as connection:
        return [(row[0], row[1]) for row in await connection.execute(query)]


async def with_vectors(knowledge: Knowledge, database: Database, source_id: str) -> str:
    """A collection of the same chunks with random unit vectors stored beside them."""
    collection = await knowledge.store.create(
        "vectors", owner_id=None, embedding_model="bench-random", dimensions=DIMENSIONS
    )
    chunks = await _all_chunks(knowledge, database, source_id)
    rng = np.random.default_rng(3)
    by_source: dict[str, list[str]] = {}
    for source, text in chunks:
        by_source.setdefault(source, []).append(text)
    for source, texts in by_source.items():
        matrix = rng.standard_normal((len(texts), DIMENSIONS)).astype(np.float32)
        matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
        vectors = [row.tobytes() for row in matrix]
        await knowledge.store.put_document(
            collection.id, source, "-", NewChunks(texts=texts, vectors=vectors)
        )
    return collection.id


async def query_times(
    knowledge: Knowledge, collection_id: str, mode: Mode, queries: int
) -> list[float]:
    rng = random.Random(11)
    collection = await knowledge.get(collection_id, owner_id=None)
    vectors = np.random.default_rng(5).standard_normal((queries, DIMENSIONS)).astype(np.float32)
    times = []
    for number in range(queries + 5):
        query = " ".join(rng.choices(QUERY_WORDS, WEIGHTS[100:], k=3))
        vector = vectors[number % queries] / np.linalg.norm(vectors[number % queries])
        started = time.perf_counter()
        hits = await knowledge.searcher.search(
            collection, query, k=5, mode=mode, vector=None if mode == "keyword" else vector
        )
        elapsed = time.perf_counter() - started
        assert hits or mode == "keyword", query
        if number >= 5:  # the first ones warm the caches (the vectors' matrix)
            times.append(elapsed * 1000)
    return times


async def measure(label: str, url: str, folder: Path, chunks: int, queries: int) -> bool:
    database = await Database.connect(url)
    knowledge = Knowledge(database, None, workspace=folder)
    ok = True
    try:
        recall, reference = await quality(knowledge, database)
        ratio = recall / reference if reference else float("inf")
        print(f"{label:<11} keyword recall@5 {recall:.3f}   bm25s (same chunks) "
              f"{reference:.3f}   ratio {ratio:.2f}  "
              f"(targets >= {RECALL_TARGET}, >= {RATIO_TARGET}x)")  # fmt: skip
        ok &= recall >= RECALL_TARGET and ratio >= RATIO_TARGET
        collection_id, seconds = await indexed(knowledge, "scale", "synthetic/*.md")
        counts = await knowledge.store.counts(collection_id)
        print(f"{label:<11} indexed {counts['chunks']} chunks ({counts['documents']} files) "
              f"in {seconds:.1f} s, {counts['chunks'] / seconds:.0f} chunks/s"
              + (f"  (target <= {INDEX_TARGET_S:g} s)" if label == "sqlite" else ""))  # fmt: skip
        if label == "sqlite":
            ok &= seconds <= INDEX_TARGET_S * chunks / 10_000
        keyword = statistics.median(
            await query_times(knowledge, collection_id, "keyword", queries)
        )
        hybrid_id = await with_vectors(knowledge, database, collection_id)
        hybrid = statistics.median(await query_times(knowledge, hybrid_id, "hybrid", queries))
        vector = statistics.median(await query_times(knowledge, hybrid_id, "vector", queries))
        print(f"{label:<11} query p50: keyword {keyword:.1f} ms (target <= {KEYWORD_P50_MS:g}), "
              f"hybrid {hybrid:.1f} ms (target <= {HYBRID_P50_MS:g}), "
              f"vector {vector:.1f} ms")  # fmt: skip
        ok &= keyword <= KEYWORD_P50_MS and hybrid <= HYBRID_P50_MS
    finally:
        await knowledge.close()
        await database.close()
    return ok


async def main_async(args: argparse.Namespace) -> int:
    chunks = 1_000 if args.quick else args.chunks
    queries = 20 if args.quick else 200
    with tempfile.TemporaryDirectory() as temp:
        folder = Path(temp) / "workspace"
        write_documents(folder / "labelled")
        write_synthetic(folder / "synthetic", chunks)
        print(f"{len(DOCUMENTS)} labelled documents, {len(QUESTIONS)} questions; "
              f"{chunks} synthetic chunks, {queries} queries per mode")  # fmt: skip
        url = f"sqlite+aiosqlite:///{temp}/bench.db"
        ok = await measure("sqlite", url, folder, chunks, queries)
        if not args.quick:
            from tests.support import postgres  # noqa: PLC0415 - only when PostgreSQL is measured

            if not postgres.available():
                print("postgresql  skipped: PostgreSQL binaries not found")
            else:
                with postgres.cluster() as cluster:
                    url = cluster.create_database()
                    ok &= await measure("postgresql", url, folder, chunks, queries)
    print("targets met" if ok else "targets missed")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="SQLite only, 1,000 chunks")
    parser.add_argument("--chunks", type=int, default=10_000)
    return asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    raise SystemExit(main())

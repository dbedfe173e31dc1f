"""Searching a collection: by keyword (the database's full-text search), by vector (cosine over
the stored embeddings, as one matrix per collection version kept in memory) or hybrid
(reciprocal rank fusion of both)."""

from __future__ import annotations

import fnmatch
from collections import OrderedDict
from typing import Literal

import numpy as np
import numpy.typing as npt

from engine.errors import InputsInvalid
from engine.knowledge.embeddings import Embedder, Vectors
from engine.knowledge.ranking import fuse, query_terms
from engine.storage.knowledge import Collection, CollectionStore, Hit

__all__ = ["MODES", "Mode", "Searcher", "default_mode"]

Mode = Literal["keyword", "vector", "hybrid"]
MODES: tuple[Mode, ...] = ("keyword", "vector", "hybrid")
MATRICES = 8  # collection versions whose vectors are kept in memory
MAX_K = 100


class _Matrix:
    """A collection version's vectors: chunk ids, their sources, one normalised row each."""

    def __init__(self, ids: npt.NDArray[np.int64], sources: list[str], rows: Vectors) -> None:
        self.ids = ids
        self.sources = sources
        self.rows = rows


def default_mode(collection: Collection) -> Mode:
    """`hybrid` for a collection with an embedding model, else `keyword` (SPEC §14)."""
    return "hybrid" if collection.embedding_model else "keyword"


class Searcher:
    def __init__(self, store: CollectionStore, embedder: Embedder) -> None:
        self.store = store
        self.embedder = embedder
        self._matrices: OrderedDict[tuple[str, int], _Matrix] = OrderedDict()

    async def search(
        self,
        collection: Collection,
        query: str,
        *,
        k: int = 5,
        mode: Mode | None = None,
        sources: str | None = None,
        vector: Vectors | None = None,
    ) -> list[Hit]:
        """The ``k`` best chunks for ``query``, best first. ``vector`` is the query's embedding
        when the caller has it already."""
        mode = mode or default_mode(collection)
        k = max(1, min(k, MAX_K))
        if mode == "keyword":
            return await self.store.keyword(collection.id, query_terms(query), k, sources=sources)
        if collection.embedding_model is None:
            raise InputsInvalid(
                f"collection {collection.name!r} has no embedding model: search it by keyword"
            )
        if vector is None:
            vector = (await self.embedder.embed(collection.embedding_model, [query]))[0]
        if mode == "vector":
            ranked = await self._nearest(collection, vector, k, sources)
            found = await self.store.chunks([chunk_id for chunk_id, _ in ranked])
            return [
                _scored(found[chunk_id], score) for chunk_id, score in ranked if chunk_id in found
            ]
        depth = max(4 * k, 20)
        keyword = await self.store.keyword(
            collection.id, query_terms(query), depth, sources=sources
        )
        nearest = await self._nearest(collection, vector, depth, sources)
        fused = fuse([[hit.id for hit in keyword], [chunk_id for chunk_id, _ in nearest]])[:k]
        known = {hit.id: hit for hit in keyword}
        missing = [chunk_id for chunk_id, _ in fused if chunk_id not in known]
        known |= await self.store.chunks(missing)
        return [_scored(known[chunk_id], score) for chunk_id, score in fused if chunk_id in known]

    async def _nearest(
        self, collection: Collection, vector: Vectors, k: int, sources: str | None
    ) -> list[tuple[int, float]]:
        matrix = await self._matrix(collection)
        if not len(matrix.ids):
            return []
        if matrix.rows.shape[1] != vector.shape[0]:
            raise InputsInvalid(
                f"the query's embedding has {vector.shape[0]} dimensions, the collection's "
                f"{matrix.rows.shape[1]}"
            )
        scores = matrix.rows @ vector.astype(np.float32)
        if sources:
            keep = np.fromiter(
                (fnmatch.fnmatchcase(source, sources) for source in matrix.sources),
                dtype=bool,
                count=len(matrix.sources),
            )
            scores = np.where(keep, scores, -np.inf)
        count = min(k, len(scores))
        best = np.argpartition(-scores, count - 1)[:count]
        best = best[np.argsort(-scores[best], kind="stable")]
        return [
            (int(matrix.ids[index]), float(scores[index]))
            for index in best
            if np.isfinite(scores[index])
        ]

    async def _matrix(self, collection: Collection) -> _Matrix:
        key = (collection.id, collection.version)
        matrix = self._matrices.get(key)
        if matrix is not None:
            self._matrices.move_to_end(key)
            return matrix
        rows = await self.store.vectors(collection.id)
        ids = np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows))
        dimensions = collection.dimensions or 0
        vectors = (
            np.frombuffer(b"".join(row[2] for row in rows), dtype=np.float32).reshape(len(rows), -1)
            if rows
            else np.zeros((0, dimensions), dtype=np.float32)
        )
        matrix = self._matrices[key] = _Matrix(ids, [row[1] for row in rows], vectors)
        for stale in [other for other in self._matrices if other[0] == collection.id]:
            if stale != key:
                del self._matrices[stale]
        while len(self._matrices) > MATRICES:
            self._matrices.popitem(last=False)
        return matrix


def _scored(hit: Hit, score: float) -> Hit:
    return Hit(id=hit.id, text=hit.text, source=hit.source, chunk=hit.chunk, score=score)

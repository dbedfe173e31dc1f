"""``/api/collections`` (SPEC §14): collections of workspace documents, indexed in the
background, searched by keyword, vector or both."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, Response, delete, get, post
from litestar.params import FromPath, JSONBody, Parameter
from litestar.status_codes import HTTP_201_CREATED, HTTP_202_ACCEPTED, HTTP_204_NO_CONTENT

from engine.errors import InputsInvalid
from engine.knowledge.embeddings import EmbeddingsUnavailable
from engine.knowledge.indexer import GlobInvalid
from engine.knowledge.search import Mode
from engine.knowledge.service import CollectionView
from engine.storage.knowledge import IndexJob
from server.api.deps import EngineDep, PrincipalDep
from server.problems import ApiError, ErrorItem, documented


class NewCollection(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    embedding_model: str | None = None
    chunk_size: int = 800  # characters
    chunk_overlap: int = 100


class NewDocuments(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    # Workspace globs: `docs/*.md`, `notes/**/*.txt`.
    paths: list[str]


class Collections(msgspec.Struct, kw_only=True):
    items: list[CollectionView]


class Indexing(msgspec.Struct, kw_only=True):
    job: IndexJob


class SearchResult(msgspec.Struct, kw_only=True):
    text: str
    source: str
    chunk: int
    score: float


class SearchResults(msgspec.Struct, kw_only=True):
    results: list[SearchResult]
    mode: str


MODE_DOC = "keyword, vector or hybrid (default: hybrid with an embedding model, else keyword)"


class CollectionController(Controller):
    path = "/api/collections"
    tags = ["collections"]  # noqa: RUF012

    @post(
        "/",
        status_code=HTTP_201_CREATED,
        summary="Create a collection (an embedding model is tried once: it must make embeddings)",
        responses=documented(409, 422),
    )
    async def create(
        self, engine: EngineDep, principal: PrincipalDep, data: JSONBody[NewCollection]
    ) -> CollectionView:
        try:
            collection = await engine.knowledge.create(
                data.name,
                owner_id=principal.owner_id,
                embedding_model=data.embedding_model,
                chunk_size=data.chunk_size,
                chunk_overlap=data.chunk_overlap,
            )
        except EmbeddingsUnavailable as exc:
            raise _invalid(exc.detail, "/embedding_model") from None
        except InputsInvalid as exc:
            raise _invalid(exc.detail, "/" + exc.detail.split(":", 1)[0]) from None
        return await engine.knowledge.view(collection)

    @get("/", summary="The caller's collections, by name", responses=documented())
    async def list_collections(self, engine: EngineDep, principal: PrincipalDep) -> Collections:
        found = await engine.knowledge.store.collections(owner_id=principal.owner_id)
        return Collections(items=[await engine.knowledge.view(item) for item in found])

    @get(
        "/{collection_id:str}",
        summary="One collection: its documents, chunks, version and indexing progress",
        responses=documented(404),
    )
    async def read(
        self, engine: EngineDep, principal: PrincipalDep, collection_id: FromPath[str]
    ) -> CollectionView:
        collection = await engine.knowledge.get(collection_id, owner_id=principal.owner_id)
        return await engine.knowledge.view(collection, files=True)

    @delete(
        "/{collection_id:str}",
        status_code=HTTP_204_NO_CONTENT,
        summary="Delete a collection and its index",
        responses=documented(404),
    )
    async def remove(
        self, engine: EngineDep, principal: PrincipalDep, collection_id: FromPath[str]
    ) -> None:
        await engine.knowledge.delete(collection_id, owner_id=principal.owner_id)

    @post(
        "/{collection_id:str}/documents",
        status_code=HTTP_202_ACCEPTED,
        summary="Index the workspace files the globs match, in the background",
        description=(
            "Unchanged files (same content digest) are not indexed again; documents whose file "
            "is gone are removed. `GET /api/collections/{id}` shows the progress."
        ),
        responses=documented(404, 422),
    )
    async def add(
        self,
        engine: EngineDep,
        principal: PrincipalDep,
        collection_id: FromPath[str],
        data: JSONBody[NewDocuments],
    ) -> Response[Indexing]:
        try:
            job = await engine.knowledge.add(collection_id, data.paths, owner_id=principal.owner_id)
        except GlobInvalid as exc:
            where = exc.detail.split(":", 1)[0]
            raise ApiError(
                400,
                exc.detail,
                errors=[ErrorItem("path_outside_workspace", exc.detail, path=f"/{where}")],
            ) from None
        except InputsInvalid as exc:
            raise _invalid(exc.detail, "/paths") from None
        return Response(Indexing(job=job), status_code=HTTP_202_ACCEPTED)

    @get(
        "/{collection_id:str}/search",
        summary="The chunks that best answer a query, best first",
        responses=documented(404, 422),
    )
    async def search(
        self,
        *,
        engine: EngineDep,
        principal: PrincipalDep,
        collection_id: FromPath[str],
        q: Annotated[str, Parameter(min_length=1, max_length=2000, description="The query")],
        k: Annotated[int, Parameter(ge=1, le=100, description="How many chunks")] = 5,
        mode: Annotated[Mode | None, Parameter(description=MODE_DOC)] = None,
        sources: Annotated[
            str | None, Parameter(description="Only documents whose path matches this glob")
        ] = None,
    ) -> SearchResults:
        collection = await engine.knowledge.get(collection_id, owner_id=principal.owner_id)
        chosen = mode or ("hybrid" if collection.embedding_model else "keyword")
        try:
            hits = await engine.knowledge.searcher.search(
                collection, q, k=k, mode=chosen, sources=sources
            )
        except InputsInvalid as exc:
            raise _invalid(exc.detail, "/mode") from None
        except EmbeddingsUnavailable as exc:
            raise _invalid(exc.detail, "/mode") from None
        return SearchResults(
            results=[
                SearchResult(text=hit.text, source=hit.source, chunk=hit.chunk, score=hit.score)
                for hit in hits
            ],
            mode=chosen,
        )


def _invalid(detail: str, path: str) -> ApiError:
    return ApiError(422, detail, errors=[ErrorItem("invalid_params", detail, path=path)])

"""``/api/datasets`` and ``/api/evaluations`` (SPEC §17): rows of inputs with what they expect,
and a workflow's variants run over them and scored."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import msgspec
from litestar import Controller, Response, get, post
from litestar.params import FromPath, FromQuery, JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_202_ACCEPTED

from engine.errors import InputsInvalid, NotFound
from engine.evals.datasets import Row, parse_file
from engine.storage.evaluations import Dataset, StoredEvaluation
from nodes.paths import resolve
from server.api.deps import EngineDep, PrincipalDep
from server.api.exports import ANSWERS, FormatParam, download
from server.api.files import FILE_PATH_PATTERN
from server.evaluations import EvaluationRequest
from server.exports import evaluation_table, render
from server.problems import documented

MAX_ROWS = 10_000


class NewDataset(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: str = msgspec.field(default="")
    # The rows, or the workspace path of a CSV or JSONL file holding them.
    rows: list[Row] | None = None
    path: Annotated[str, msgspec.Meta(pattern=FILE_PATH_PATTERN)] | None = None


class Datasets(msgspec.Struct, kw_only=True):
    items: list[Dataset]


class EvaluationPage(msgspec.Struct, kw_only=True):
    items: list[StoredEvaluation]


class Started(msgspec.Struct, kw_only=True):
    id: str


class DatasetController(Controller):
    path = "/api/datasets"
    tags = ["evaluations"]  # noqa: RUF012

    @post(
        "/",
        status_code=HTTP_201_CREATED,
        summary="Store a dataset: rows given, or read from a CSV or JSONL workspace file",
        responses=documented(400, 404, 422),
    )
    async def create(
        self, engine: EngineDep, principal: PrincipalDep, data: JSONBody[NewDataset]
    ) -> Dataset:
        if (data.rows is None) == (data.path is None):
            raise InputsInvalid("give either `rows` or `path`")
        rows = data.rows
        if data.path is not None:
            target = resolve(engine.runs.workspace_of(principal.owner_id), data.path)
            if not target.is_file():
                raise NotFound(f"file {data.path} not found in the workspace")
            text = await asyncio.to_thread(Path.read_text, target, encoding="utf-8")
            rows = parse_file(data.path, text)
        assert rows is not None
        if not rows or len(rows) > MAX_ROWS:
            raise InputsInvalid(f"a dataset has 1 to {MAX_ROWS} rows, not {len(rows)}")
        name = data.name or (Path(data.path).stem if data.path else "dataset")
        return await engine.evaluations.store.create_dataset(
            name, msgspec.to_builtins(rows), owner_id=principal.owner_id
        )

    @get("/", summary="The caller's datasets, newest first", responses=documented())
    async def list_datasets(self, engine: EngineDep, principal: PrincipalDep) -> Datasets:
        items = await engine.evaluations.store.datasets(owner_id=principal.owner_id)
        return Datasets(items=items)

    @get("/{dataset_id:str}", summary="One dataset with its rows", responses=documented(404))
    async def read(
        self, engine: EngineDep, principal: PrincipalDep, dataset_id: FromPath[str]
    ) -> Dataset:
        return await engine.evaluations.store.dataset(dataset_id, owner_id=principal.owner_id)


class EvaluationController(Controller):
    path = "/api/evaluations"
    tags = ["evaluations"]  # noqa: RUF012

    @post(
        "/",
        status_code=HTTP_202_ACCEPTED,
        summary="Run a workflow's variants over a dataset and score the outputs",
        description="Everything is checked before any run starts (422 naming the place).",
        responses=documented(404, 422),
    )
    async def create(
        self, engine: EngineDep, principal: PrincipalDep, data: JSONBody[EvaluationRequest]
    ) -> Response[Started]:
        stored = await engine.evaluations.start(data, owner_id=principal.owner_id)
        return Response(Started(id=stored.id), status_code=HTTP_202_ACCEPTED)

    @get("/", summary="A workflow's evaluations, newest first", responses=documented())
    async def list_evaluations(
        self, engine: EngineDep, principal: PrincipalDep, workflow_id: FromQuery[str]
    ) -> EvaluationPage:
        items = await engine.evaluations.store.evaluations(
            workflow_id, owner_id=principal.owner_id
        )
        return EvaluationPage(items=items)

    @get(
        "/{evaluation_id:str}/export",
        summary="One row per dataset row and variant: run, status, score, outputs",
        media_type="application/octet-stream",
        responses=documented(404),
        opt={"openapi": ANSWERS},
    )
    async def export(
        self,
        engine: EngineDep,
        principal: PrincipalDep,
        evaluation_id: FromPath[str],
        fmt: FormatParam = "csv",
    ) -> Response[bytes]:
        stored = await engine.evaluations.store.evaluation(
            evaluation_id, owner_id=principal.owner_id
        )
        table = evaluation_table(stored.id, stored.report)
        content = await asyncio.to_thread(render, table, fmt, stored)
        return download(content, fmt, stored.id)

    @post(
        "/{evaluation_id:str}/cancel",
        status_code=HTTP_200_OK,
        summary="Stop an evaluation: no more rows run; it is stored cancelled",
        responses=documented(404, 409),
    )
    async def cancel(
        self, engine: EngineDep, principal: PrincipalDep, evaluation_id: FromPath[str]
    ) -> StoredEvaluation:
        return await engine.evaluations.cancel(evaluation_id, owner_id=principal.owner_id)

    @get(
        "/{evaluation_id:str}",
        summary="An evaluation's progress and report: per variant and per row",
        responses=documented(404),
    )
    async def read(
        self, engine: EngineDep, principal: PrincipalDep, evaluation_id: FromPath[str]
    ) -> StoredEvaluation:
        return await engine.evaluations.store.evaluation(
            evaluation_id, owner_id=principal.owner_id
        )


__all__ = ["DatasetController", "EvaluationController"]

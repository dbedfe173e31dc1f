"""``GET /api/runs/{id}/export`` and ``GET /api/batches/{id}/export``: outputs as files."""

from __future__ import annotations

import asyncio
from typing import Annotated

from litestar import Controller, Response, get
from litestar.params import FromPath, QueryParameter

from server.api.deps import EngineDep, PrincipalDep
from server.exports import FORMATS, MEDIA_TYPES, Format, batch_table, render, run_table
from server.openapi import OpenApiFacts
from server.problems import documented

FormatParam = Annotated[
    Format, QueryParameter(name="format", description=", ".join(FORMATS))
]


BINARY = {"type": "string", "format": "binary"}
ANSWERS = OpenApiFacts(
    media_types={
        media.partition(";")[0]: {"type": "object"} if fmt == "json" else BINARY
        for fmt, media in MEDIA_TYPES.items()
    }
)


def download(content: bytes, fmt: str, name: str) -> Response[bytes]:
    return Response(
        content,
        media_type=MEDIA_TYPES[fmt],
        headers={"Content-Disposition": f'attachment; filename="{name}.{fmt}"'},
    )


class ExportController(Controller):
    tags = ["exports"]  # noqa: RUF012

    @get(
        "/api/runs/{run_id:str}/export",
        summary="A run's inputs and outputs as json, csv, md, html, xlsx, txt, xml or pdf",
        media_type="application/octet-stream",
        responses=documented(404),
        opt={"openapi": ANSWERS},
    )
    async def run_export(
        self,
        engine: EngineDep,
        principal: PrincipalDep,
        run_id: FromPath[str],
        fmt: FormatParam = "json",
    ) -> Response[bytes]:
        record = await engine.runs.get(run_id, owner_id=principal.owner_id)
        content = await asyncio.to_thread(render, run_table(record), fmt, record)
        return download(content, fmt, record.id)

    @get(
        "/api/batches/{batch_id:str}/export",
        summary="One row per run of a batch: inputs, outputs, status",
        media_type="application/octet-stream",
        responses=documented(404),
        opt={"openapi": ANSWERS},
    )
    async def batch_export(
        self,
        engine: EngineDep,
        principal: PrincipalDep,
        batch_id: FromPath[str],
        fmt: FormatParam = "json",
    ) -> Response[bytes]:
        batch = await engine.batches.get(batch_id, owner_id=principal.owner_id)
        table = batch_table(batch.id, batch.runs)
        content = await asyncio.to_thread(render, table, fmt, batch)
        return download(content, fmt, batch.id)

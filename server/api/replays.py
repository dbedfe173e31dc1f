"""``POST /api/runs/{id}/replay`` (SPEC §17): a child run executing every node again, the
recordable ones (models, tools) answered from the run's records while their inputs are as
recorded; ``/api/runs/{id}/pin``: a run kept as a test case of its workflow (`nodeloom test`
replays them)."""

from __future__ import annotations

from typing import Any, Literal

import msgspec
from litestar import Controller, Response, delete, post
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_202_ACCEPTED

from engine.records import RunRecord
from server.api.deps import EngineDep, PrincipalDep
from server.api.runs import FINISHED_RUN, answer
from server.problems import documented


class Replay(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    params: dict[str, dict[str, Any]] = {}
    inputs: dict[str, Any] = {}
    # A recorded node whose cache key changed: fail it, or call it again.
    on_miss: Literal["fail", "call"] = "fail"
    wait: bool = False


class ReplayController(Controller):
    path = "/api/runs/{run_id:str}/replay"
    tags = ["runs"]  # noqa: RUF012

    @post(
        "/",
        status_code=HTTP_202_ACCEPTED,
        summary="Replay a run: every node again, models and tools from its records",
        description="A child run with `replay_of`; 201 with the finished run when `wait` is "
        "true. A recorded node whose inputs or params changed fails, naming what changed, or "
        "with `on_miss: call` is called again.",
        responses={201: FINISHED_RUN, **documented(404, 409, 422)},
    )
    async def replay(
        self,
        engine: EngineDep,
        principal: PrincipalDep,
        run_id: FromPath[str],
        data: JSONBody[Replay | None] = None,
    ) -> Response[RunRecord]:
        request = data or Replay()
        active = await engine.runs.replay(
            run_id,
            params=request.params,
            inputs=request.inputs,
            on_miss=request.on_miss,
            owner_id=principal.owner_id,
            caller_waits=request.wait,
        )
        return await answer(engine, active, request.wait, principal.owner_id)


class PinController(Controller):
    path = "/api/runs/{run_id:str}/pin"
    tags = ["runs"]  # noqa: RUF012

    @post(
        "/",
        status_code=HTTP_200_OK,
        summary="Pin a run as a test case of its workflow (`nodeloom test` replays it)",
        responses=documented(404),
    )
    async def pin(
        self, engine: EngineDep, principal: PrincipalDep, run_id: FromPath[str]
    ) -> RunRecord:
        await engine.runs.store.pin(run_id, pinned=True, owner_id=principal.owner_id)
        return await engine.runs.get(run_id, owner_id=principal.owner_id)

    @delete(
        "/",
        status_code=HTTP_200_OK,
        summary="Unpin a run",
        responses=documented(404),
    )
    async def unpin(
        self, engine: EngineDep, principal: PrincipalDep, run_id: FromPath[str]
    ) -> RunRecord:
        await engine.runs.store.pin(run_id, pinned=False, owner_id=principal.owner_id)
        return await engine.runs.get(run_id, owner_id=principal.owner_id)

"""``/api/runs`` and ``POST /api/workflows/{id}/runs``: start, read, control and compare runs."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, Response, get, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, FromQuery, JSONBody, Parameter, QueryParameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_202_ACCEPTED

from engine.execution.events import RunStatus
from engine.records import RunRecord
from engine.runs.launch import RunHandle
from server.api.deps import EngineDep, PrincipalDep, paged
from server.api.schemas import Cursor, Diff, Limit, Rerun, Resume, RunPage, StartRun, TreeNode
from server.problems import documented
from server.state import Engine

FINISHED_RUN = ResponseSpec(RunRecord, generate_examples=False, description="The finished run")


async def answer(
    engine: Engine, active: RunHandle, wait: bool, owner_id: str | None
) -> Response[RunRecord]:
    """201 with the finished run when the caller waits, else 202 with the run as it stands."""
    if wait:
        return Response(await active.wait(), status_code=HTTP_201_CREATED)
    record = await engine.runs.get(active.id, owner_id=owner_id)
    return Response(record, status_code=HTTP_202_ACCEPTED)


class StartController(Controller):
    path = "/api/workflows/{workflow_id:str}/runs"
    tags = ["runs"]  # noqa: RUF012

    @post(
        "/",
        summary="Start a run of the workflow's current version",
        description="201 with the finished run when `wait` is true; otherwise 202 at once.",
        status_code=HTTP_202_ACCEPTED,
        responses={201: FINISHED_RUN, **documented(404, 422)},
    )
    async def start(
        self,
        engine: EngineDep,
        principal: PrincipalDep,
        workflow_id: FromPath[str],
        data: JSONBody[StartRun | None] = None,
    ) -> Response[RunRecord]:
        request = data or StartRun()
        record, workflow = await engine.current_workflow(workflow_id, owner_id=principal.owner_id)
        active = await engine.runs.start(
            workflow,
            request.inputs,
            workflow_id=record.id,
            workflow_version=record.version,
            owner_id=principal.owner_id,
            caller_waits=request.wait,
        )
        return await answer(engine, active, request.wait, principal.owner_id)


class RunController(Controller):
    path = "/api/runs"
    tags = ["runs"]  # noqa: RUF012

    @get("/", summary="List runs, newest first", responses=documented())
    async def list_runs(
        self,
        *,
        engine: EngineDep,
        principal: PrincipalDep,
        workflow_id: FromQuery[str | None] = None,
        status: FromQuery[RunStatus | None] = None,
        trigger: Annotated[
            str | None,
            QueryParameter(
                max_length=80,
                description="What started the runs: `webhook:hook_…` exactly, or a kind such as "
                "`webhook`, `schedule`, `batch`, `api`, `manual`, `mcp`",
            ),
        ] = None,
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> RunPage:
        page = await paged(
            lambda: engine.runs.list_runs(
                workflow_id=workflow_id,
                status=status,
                trigger=trigger,
                owner_id=principal.owner_id,
                limit=limit,
                cursor=cursor,
            )
        )
        return RunPage(items=page.items, next_cursor=page.next_cursor)

    @get("/{run_id:str}", summary="One run with every node's state", responses=documented(404))
    async def read(
        self, engine: EngineDep, principal: PrincipalDep, run_id: FromPath[str]
    ) -> RunRecord:
        return await engine.runs.get(run_id, owner_id=principal.owner_id)

    @post(
        "/{run_id:str}/cancel",
        status_code=HTTP_200_OK,
        summary="Cancel a running run; answers the cancelled run",
        responses=documented(404, 409),
    )
    async def cancel(
        self, engine: EngineDep, principal: PrincipalDep, run_id: FromPath[str]
    ) -> RunRecord:
        return await engine.runs.cancel(run_id, owner_id=principal.owner_id)

    @post(
        "/{run_id:str}/resume",
        status_code=HTTP_202_ACCEPTED,
        summary="Resume an interrupted run, reusing every committed node result",
        responses={201: FINISHED_RUN, **documented(404, 409, 422)},
    )
    async def resume(
        self,
        engine: EngineDep,
        principal: PrincipalDep,
        run_id: FromPath[str],
        data: JSONBody[Resume | None] = None,
    ) -> Response[RunRecord]:
        active = await engine.runs.resume(run_id, owner_id=principal.owner_id)
        wait = (data or Resume()).wait
        return await answer(engine, active, wait, principal.owner_id)

    @post(
        "/{run_id:str}/rerun",
        status_code=HTTP_202_ACCEPTED,
        summary="A child run with changed params or inputs, reusing what they do not affect",
        responses={201: FINISHED_RUN, **documented(404, 409, 422)},
    )
    async def rerun(
        self,
        engine: EngineDep,
        principal: PrincipalDep,
        run_id: FromPath[str],
        data: JSONBody[Rerun | None] = None,
    ) -> Response[RunRecord]:
        request = data or Rerun()
        active = await engine.runs.rerun(
            run_id,
            from_node=request.from_node,
            params=request.params,
            inputs=request.inputs,
            owner_id=principal.owner_id,
            caller_waits=request.wait,
        )
        return await answer(engine, active, request.wait, principal.owner_id)

    @get(
        "/{run_id:str}/tree",
        summary="The whole run tree this run belongs to, from its root",
        responses=documented(404),
    )
    async def tree(
        self, engine: EngineDep, principal: PrincipalDep, run_id: FromPath[str]
    ) -> TreeNode:
        return msgspec.convert(
            await engine.runs.tree(run_id, owner_id=principal.owner_id), TreeNode
        )

    @get(
        "/{run_id:str}/diff/{other_id:str}",
        summary="Node by node: params changed, output changed, timings, tokens",
        responses=documented(404, 409),
    )
    async def diff(
        self,
        engine: EngineDep,
        principal: PrincipalDep,
        run_id: FromPath[str],
        other_id: Annotated[str, Parameter(description="The run to compare with")],
    ) -> Diff:
        found = await engine.runs.diff(run_id, other_id, owner_id=principal.owner_id)
        return msgspec.convert(found, Diff)

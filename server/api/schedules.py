"""``/api/workflows/{id}/schedules`` (SPEC §16): runs of the workflow at the slots of a cron
expression in a time zone, with the given inputs; each lists its ``next_run_at``."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, delete, get, post
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_201_CREATED

from engine.cron import ScheduleInvalid, next_slot
from engine.documents.inputs import resolve_inputs
from engine.storage.keys import now
from engine.storage.schedules import CatchUp, Schedule
from server.api.deps import EngineDep, PrincipalDep
from server.problems import ApiError, ErrorItem, documented


class ScheduleRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``cron``: five fields (minute hour day month weekday) or six (seconds last).
    ``catch_up``: after slots were missed (no server running), start one run for the latest
    (`latest`) or none (`none`)."""

    cron: Annotated[str, msgspec.Meta(min_length=1, max_length=120)]
    timezone: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] = "UTC"
    inputs: dict[str, Any] = {}
    catch_up: CatchUp = "none"


class SchedulePage(msgspec.Struct, kw_only=True):
    items: list[Schedule]


class ScheduleController(Controller):
    path = "/api/workflows/{workflow_id:str}/schedules"
    tags = ["schedules"]  # noqa: RUF012

    @post(
        "/",
        status_code=HTTP_201_CREATED,
        summary="Run the workflow at every slot of a cron expression",
        description="A bad cron expression or time zone is 422 naming the field; so are inputs "
        "the workflow does not take.",
        responses=documented(404, 422),
    )
    async def create(
        self,
        engine: EngineDep,
        principal: PrincipalDep,
        workflow_id: FromPath[str],
        data: JSONBody[ScheduleRequest],
    ) -> Schedule:
        _, workflow = await engine.current_workflow(workflow_id, owner_id=principal.owner_id)
        try:
            first = next_slot(data.cron, data.timezone, now())
        except ScheduleInvalid as exc:
            errors = [ErrorItem(f"invalid_{exc.field}", exc.detail, path=f"/{exc.field}")]
            raise ApiError(422, exc.detail, errors=errors) from None
        resolve_inputs(engine.runs.plan(workflow), data.inputs)
        return await engine.schedules.create(
            workflow_id,
            owner_id=principal.owner_id,
            cron=" ".join(data.cron.split()),
            timezone=data.timezone,
            inputs=data.inputs,
            catch_up=data.catch_up,
            next_run_at=first,
        )

    @get(
        "/", summary="The workflow's schedules, each with its next slot", responses=documented(404)
    )
    async def list_schedules(
        self, engine: EngineDep, principal: PrincipalDep, workflow_id: FromPath[str]
    ) -> SchedulePage:
        await engine.workflows.current_version(workflow_id, owner_id=principal.owner_id)
        return SchedulePage(items=await engine.schedules.of_workflow(workflow_id))

    @delete("/{schedule_id:str}", summary="Delete a schedule", responses=documented(404))
    async def remove(
        self,
        engine: EngineDep,
        principal: PrincipalDep,
        workflow_id: FromPath[str],
        schedule_id: FromPath[str],
    ) -> None:
        await engine.workflows.current_version(workflow_id, owner_id=principal.owner_id)
        await engine.schedules.delete(workflow_id, schedule_id)

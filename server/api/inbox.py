"""``GET /api/inbox`` and ``POST /api/runs/{id}/nodes/{node}/answer``: what waits for a person's
answer (SPEC §16), and answering it, which resumes the run."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Response, get, post
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_202_ACCEPTED

from engine.records import RunRecord
from engine.storage.waiting import Waiting
from server.api.deps import EngineDep, PrincipalDep
from server.api.runs import FINISHED_RUN, answer
from server.problems import documented


class Inbox(msgspec.Struct, kw_only=True):
    items: list[Waiting]


class Answer(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    # The answer: it must fit the node's schema (one of its choices, when it has them).
    answer: Any
    # Answer when the run has finished (201; or when it waits again) instead of at once (202).
    wait: bool = False


class InboxController(Controller):
    path = "/api/inbox"
    tags = ["runs"]  # noqa: RUF012

    @get(
        "/",
        summary="The nodes waiting for the caller's answer, newest first",
        responses=documented(),
    )
    async def inbox(self, engine: EngineDep, principal: PrincipalDep) -> Inbox:
        return Inbox(items=await engine.runs.inbox(owner_id=principal.owner_id))


class AnswerController(Controller):
    path = "/api/runs/{run_id:str}/nodes/{node_id:str}/answer"
    tags = ["runs"]  # noqa: RUF012

    @post(
        "/",
        status_code=HTTP_202_ACCEPTED,
        summary="Answer a node waiting for a person; the run goes on from there",
        description="422 when the answer does not fit the node's schema (the node keeps "
        "waiting), 409 when the node is not waiting.",
        responses={201: FINISHED_RUN, **documented(404, 409, 422)},
    )
    async def answer(
        self,
        engine: EngineDep,
        principal: PrincipalDep,
        run_id: FromPath[str],
        node_id: FromPath[str],
        data: JSONBody[Answer],
    ) -> Response[RunRecord]:
        active = await engine.runs.answer(
            run_id, node_id, data.answer, owner_id=principal.owner_id
        )
        return await answer(engine, active, data.wait, principal.owner_id)

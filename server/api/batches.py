"""``POST /api/workflows/{id}/runs/batch`` and ``/api/batches/{id}``: many runs, one progress."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

import msgspec
from litestar import Controller, Response, get, post
from litestar.params import FromPath, JSONBody
from litestar.response import Stream
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_202_ACCEPTED

from server.api.deps import EngineDep, PrincipalDep
from server.api.events import SSE_HEADERS
from server.batches import MAX_ITEMS, Batch, Progress
from server.live import Subscription
from server.openapi import OpenApiFacts
from server.problems import ApiError, ErrorItem, documented

_encoder = msgspec.json.Encoder()


class BatchRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A list of input sets, or one input set and a `count`. A workflow input named `index`
    gets each run's position (0, 1, …), so templates can use ``{{ index }}``."""

    inputs: list[dict[str, Any]] | dict[str, Any] = []
    count: Annotated[int, msgspec.Meta(ge=1, le=MAX_ITEMS)] | None = None
    wait: bool = False

    def input_sets(self) -> list[dict[str, Any]]:
        if isinstance(self.inputs, list):
            if self.count is not None:
                raise _bad("give either a list of input sets or one input set with `count`")
            if not self.inputs or len(self.inputs) > MAX_ITEMS:
                raise _bad(f"a batch has 1 to {MAX_ITEMS} input sets, got {len(self.inputs)}")
            return self.inputs
        if self.count is None:
            raise _bad("one input set needs a `count` of runs (or give a list of input sets)")
        return [dict(self.inputs) for _ in range(self.count)]


def _bad(detail: str) -> ApiError:
    return ApiError(422, detail, errors=[ErrorItem("invalid_batch", detail, path="/inputs")])


class BatchStartController(Controller):
    path = "/api/workflows/{workflow_id:str}/runs/batch"
    tags = ["batches"]  # noqa: RUF012

    @post(
        "/",
        status_code=HTTP_202_ACCEPTED,
        summary="Start one run per input set, under one batch id",
        description="Every input set is checked first: one bad set starts nothing.",
        responses=documented(404, 422),
        opt={"openapi": OpenApiFacts(statuses={201: "Created: with `wait`, the finished batch"})},
    )
    async def start(
        self,
        engine: EngineDep,
        principal: PrincipalDep,
        workflow_id: FromPath[str],
        data: JSONBody[BatchRequest],
    ) -> Response[Batch]:
        record, workflow = await engine.current_workflow(workflow_id, owner_id=principal.owner_id)
        # The saved workflows it runs as bodies, at their versions now: the same for every run.
        workflow = await engine.runs.with_saved_bodies(
            workflow, owner_id=principal.owner_id, workflow_id=workflow_id
        )
        items = engine.batches.items(workflow, data.input_sets())
        stored = await engine.batches.start(record, workflow, items, owner_id=principal.owner_id)
        if data.wait:
            await engine.batches.wait(stored.id)
        batch = await engine.batches.get(stored.id, owner_id=principal.owner_id)
        return Response(batch, status_code=HTTP_201_CREATED if data.wait else HTTP_202_ACCEPTED)


class BatchController(Controller):
    path = "/api/batches/{batch_id:str}"
    tags = ["batches"]  # noqa: RUF012

    @get("/", summary="A batch: progress and each item's run", responses=documented(404))
    async def read(
        self, engine: EngineDep, principal: PrincipalDep, batch_id: FromPath[str]
    ) -> Batch:
        return await engine.batches.get(batch_id, owner_id=principal.owner_id)

    @post(
        "/cancel",
        status_code=HTTP_200_OK,
        summary="Start no more runs of the batch and cancel those running",
        responses=documented(404),
    )
    async def cancel(
        self, engine: EngineDep, principal: PrincipalDep, batch_id: FromPath[str]
    ) -> Batch:
        return await engine.batches.cancel(batch_id, owner_id=principal.owner_id)

    @get(
        "/events",
        summary="The batch's progress as Server-Sent Events (`batch.progress`), until it ends",
        media_type="text/event-stream",
        responses=documented(404),
    )
    async def events(
        self, engine: EngineDep, principal: PrincipalDep, batch_id: FromPath[str]
    ) -> Stream:
        channel = engine.batches.channels.get(batch_id)
        subscription = channel.subscribe() if channel is not None else None
        try:
            batch = await engine.batches.get(batch_id, owner_id=principal.owner_id)
        except BaseException:
            if subscription is not None:
                subscription.close()
            raise
        return Stream(
            _progress_frames(batch.progress, subscription),
            media_type="text/event-stream",
            headers=SSE_HEADERS,
        )


async def _progress_frames(
    first: Progress, subscription: Subscription[Progress] | None
) -> AsyncIterator[bytes]:
    seq = 1
    if subscription is None:
        yield _frame(seq, first)
        return
    try:
        latest = subscription.past[-1] if subscription.past else first
        yield _frame(seq, latest)
        while (progress := await subscription.next()) is not None:
            # ``first`` was read after subscribing: what was published in between is older.
            if progress.done < latest.done or progress.pending > latest.pending:
                continue
            seq += 1
            latest = progress
            yield _frame(seq, progress)
    finally:
        subscription.close()


def _frame(seq: int, progress: Progress) -> bytes:
    return b"id: %d\nevent: batch.progress\ndata: %s\n\n" % (seq, _encoder.encode(progress))

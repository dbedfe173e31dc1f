"""``GET /api/runs/{id}/events``: a run's events as Server-Sent Events.

Stored events come first (after ``Last-Event-ID``), then, for a run executing in this process,
the live ones from its channel, de-duplicated by ``seq``; the stream ends after ``run.finished``.
A run that this process does not follow is read from storage: through the LISTEN feed of
distributed execution when runs execute on workers (they NOTIFY each commit of events), else by
reading its stored events again every `POLL_S` seconds (a run of another process on SQLite).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Any

import msgspec
from litestar import Controller, get
from litestar.params import FromPath, HeaderParameter, Parameter
from litestar.response import Stream

from engine.errors import NotFound
from engine.execution.events import AnyEvent, decode_event
from server.api.deps import EngineDep, PrincipalDep
from server.api.schemas import MAX_INT
from server.live import Subscription
from server.problems import documented
from server.state import Engine

POLL_S = 0.25
KEEPALIVE_S = 15.0
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
_encoder = msgspec.json.Encoder()


def envelope(event: AnyEvent) -> dict[str, Any]:
    """SPEC §6.1: ``{"type", "run_id", "node", "seq", "data": {…the rest}}``."""
    fields: dict[str, Any] = msgspec.to_builtins(event)
    kind = fields.pop("type")
    run_id, seq = fields.pop("run_id"), fields.pop("seq")
    node = fields.pop("node", None)
    return {"type": kind, "run_id": run_id, "node": node, "seq": seq, "data": fields}


def sse(event: AnyEvent) -> bytes:
    data = _encoder.encode(envelope(event))
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (event.seq, envelope_type(event), data)


def envelope_type(event: AnyEvent) -> bytes:
    return str(event.__struct_config__.tag).encode()


def _finished(event: AnyEvent) -> bool:
    return event.__struct_config__.tag == "run.finished"


async def run_events(
    engine: Engine, run_id: str, after: int, subscription: Subscription[AnyEvent] | None
) -> AsyncIterator[AnyEvent | None]:
    """Every event of the run after ``after``, past then live, each once, until the end;
    None after `KEEPALIVE_S` seconds without one."""
    last = after
    try:
        for _, data in await engine.runs.events(run_id, after=last):
            event = decode_event(data.encode())
            last = event.seq
            yield event
            if _finished(event):
                return
        if subscription is None:
            async for event in engine.runs.events_elsewhere(run_id, last):
                yield event
            return
        for event in subscription.past:
            if event.seq > last:
                last = event.seq
                yield event
                if _finished(event):
                    return
        while True:
            try:
                live = await asyncio.wait_for(subscription.next(), KEEPALIVE_S)
            except TimeoutError:
                yield None
                continue
            if live is None:
                return
            if live.seq > last:
                last = live.seq
                yield live
                if _finished(live):
                    return
    finally:
        if subscription is not None:
            subscription.close()


async def _frames(events: AsyncIterator[AnyEvent | None]) -> AsyncIterator[bytes]:
    yield b"retry: 1000\n\n"
    async for event in events:
        yield sse(event) if event is not None else b": keep-alive\n\n"


class RunEventsController(Controller):
    path = "/api/runs/{run_id:str}/events"
    tags = ["runs"]  # noqa: RUF012

    @get(
        "/",
        summary="The run's events as Server-Sent Events: past ones first, then live",
        description=(
            "Each event's `id:` is its `seq`; `Last-Event-ID` (or `?after=`) resumes after it. "
            "The stream ends after `run.finished`."
        ),
        media_type="text/event-stream",
        responses=documented(404),
    )
    async def events(
        self,
        engine: EngineDep,
        principal: PrincipalDep,
        run_id: FromPath[str],
        last_event_id: Annotated[
            str | None, HeaderParameter(name="Last-Event-ID", required=False)
        ] = None,
        after: Annotated[int | None, Parameter(ge=0, le=MAX_INT, required=False)] = None,
    ) -> Stream:
        try:
            await engine.runs.row(run_id, owner_id=principal.owner_id)
        except NotFound:  # 404, unless it executes here and its row is not stored yet
            if engine.runs.unstored(run_id, principal.owner_id) is None:
                raise
        start = after or 0
        if last_event_id is not None and last_event_id.strip().isdigit():
            start = min(max(start, int(last_event_id)), MAX_INT)
        channel = engine.live.get(run_id)
        subscription = channel.subscribe() if channel is not None else None
        stream = run_events(engine, run_id, start, subscription)
        return Stream(_frames(stream), media_type="text/event-stream", headers=SSE_HEADERS)

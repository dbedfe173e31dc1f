"""Replays on workers (SPEC §17): a queued replay's recordable nodes take the replayed run's
records on the worker that executes them, and a miss fails or calls as it does in-process."""

from __future__ import annotations

import asyncio
from typing import Any

from engine.runs.service import RunService
from tests.support.documents import workflow

ARGS = {"type": "object"}
SUM = workflow(
    [
        {"id": "args", "type": "input", "params": {"name": "args", "schema": ARGS}},
        {"id": "add", "type": "tool", "params": {"tool": "calculator"}},
        {"id": "label", "type": "template", "params": {"template": "= {{ result }}"}},
        {"id": "out", "type": "output", "params": {"name": "sum"}},
    ],
    [("args.value", "add.args"), ("add.result", "label.result"), ("label.text", "out.value")],
)


async def test_a_replay_on_workers_takes_the_records_and_fails_or_calls_on_a_miss(
    workers: Any, queued: RunService
) -> None:
    workers(1)
    first = await asyncio.wait_for(
        (await queued.start(SUM, {"args": {"expression": "6 * 7"}})).wait(), 20
    )
    assert (first.status, first.outputs) == ("succeeded", {"sum": "= 42"}), first.error

    replay = await asyncio.wait_for((await queued.replay(first.id)).wait(), 20)
    assert (replay.status, replay.replay_of) == ("succeeded", first.id)
    assert replay.outputs == first.outputs
    add = replay.nodes["add"]
    assert (add.status, add.reason_code, add.reason) == (
        "cached",
        "replayed",
        f"replayed from run {first.id}",
    )
    assert replay.nodes["label"].status == "succeeded"  # not recordable: executed again

    other = {"args": {"expression": "1 + 1"}}
    missed = await asyncio.wait_for((await queued.replay(first.id, inputs=other)).wait(), 20)
    assert missed.status == "failed"
    assert missed.nodes["add"].error == (
        f"replay of run {first.id}: not as recorded (upstream changed: args)"
    )

    called = await asyncio.wait_for(
        (await queued.replay(first.id, inputs=other, on_miss="call")).wait(), 20
    )
    assert (called.status, called.outputs) == ("succeeded", {"sum": "= 2"}), called.error
    assert called.nodes["add"].reason_code == "replay_missed"

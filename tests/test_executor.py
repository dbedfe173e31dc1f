from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from typing import Any

import pytest

from engine.documents.graph import compile_plan
from engine.documents.inputs import resolve_inputs
from engine.execution.events import (
    AnyEvent,
    NodeCompleted,
    NodeFailed,
    NodeSkipped,
    NodeToken,
    RunFinished,
    RunStarted,
)
from engine.execution.results import RunResult
from tests.support.documents import workflow
from tests.support.engine import new_execution
from tests.support.nodes import Flaky, Sleep, test_registry


def sleep(node_id: str, seconds: float = 0, **params: Any) -> dict[str, Any]:
    return {"id": node_id, "type": "sleep", "params": {"seconds": seconds, **params}}


async def run(
    nodes: list[dict[str, Any]],
    edges: list[tuple[str, str]] = (),  # type: ignore[assignment]
    inputs: dict[str, Any] | None = None,
    events: list[AnyEvent] | None = None,
    **options: Any,
) -> RunResult:
    plan = compile_plan(workflow(nodes, edges), test_registry())
    listeners = [events.append] if events is not None else []
    execution = new_execution(
        plan, resolve_inputs(plan, inputs or {}), run_id="run_test", listeners=listeners, **options
    )
    return await execution.execute()


async def test_independent_branches_overlap() -> None:
    result = await run(
        [
            sleep("a", 0.2),
            sleep("b", 0.2),
            {"id": "j", "type": "aggregate", "params": {"mode": "list"}},
        ],
        [("a.y", "j.items"), ("b.y", "j.items")],
    )
    assert result.status == "succeeded"
    (a_start, a_end), (b_start, b_end) = Sleep.spans["a"], Sleep.spans["b"]
    assert a_start < b_end  # the two sleeps overlapped
    assert b_start < a_end
    assert Sleep.spans["a"][1] - Sleep.spans["a"][0] >= 0.2


async def test_concurrency_is_bounded() -> None:
    result = await run([sleep(f"n{i}", 0.05) for i in range(4)], max_concurrency=1)
    assert result.status == "succeeded"
    spans = sorted(Sleep.spans.values())
    assert all(earlier[1] <= later[0] for earlier, later in itertools.pairwise(spans))


async def test_a_wide_fan_keeps_to_its_slots_and_each_node_to_its_timeout() -> None:
    """Tasks that finish a node go on with nodes waiting for a slot: never more at once than
    the limit, and each node's timeout is still its own."""
    fan = [sleep(f"n{i}", 0.01) for i in range(30)]
    fan[17] = sleep("n17", 1.0, timeout_s=0.05)
    result = await run(
        [sleep("src"), *fan], [("src.y", f"n{i}.x") for i in range(30)], max_concurrency=3
    )
    assert result.nodes["n17"].status == "failed"
    assert result.nodes["n17"].error == "timed out after 0.05 s"
    assert all(result.nodes[f"n{i}"].status == "succeeded" for i in range(30) if i != 17)
    spans = [span for node_id, span in Sleep.spans.items() if node_id != "n17"]
    at_once = max(sum(1 for start, end in spans if start <= moment < end) for moment, _ in spans)
    assert at_once <= 3


async def test_dependencies_run_in_order_and_values_flow() -> None:
    nodes = [
        {"id": "topic", "type": "input", "params": {"name": "topic", "schema": {"type": "string"}}},
        {"id": "ask", "type": "template", "params": {"template": "About {{ topic }}."}},
        {"id": "out", "type": "output", "params": {"name": "sentence"}},
    ]
    result = await run(
        nodes, [("topic.value", "ask.topic"), ("ask.text", "out.value")], inputs={"topic": "bees"}
    )
    assert result.outputs == {"sentence": "About bees."}
    assert [result.nodes[n].status for n in ("topic", "ask", "out")] == ["succeeded"] * 3


async def test_timeout_fails_the_node() -> None:
    result = await run([sleep("slow", 5, timeout_s=0.05)])
    state = result.nodes["slow"]
    assert state.status == "failed"
    assert state.error == "timed out after 0.05 s"
    assert result.status == "failed"
    assert result.error == "node slow failed: timed out after 0.05 s"


async def test_retries_with_backoff_until_success() -> None:
    events: list[AnyEvent] = []
    loop = asyncio.get_running_loop()
    started = loop.time()
    result = await run(
        [
            {
                "id": "f",
                "type": "flaky",
                "params": {"failures": 2, "retries": 2, "retry_backoff_s": 0.05},
            }
        ],
        events=events,
    )
    elapsed = loop.time() - started
    assert result.nodes["f"].status == "succeeded"
    assert result.nodes["f"].attempt == 3
    assert Flaky.attempts["f"] == 3
    failures = [e for e in events if isinstance(e, NodeFailed)]
    assert [(e.attempt, e.will_retry) for e in failures] == [(1, True), (2, True)]
    assert elapsed >= 0.05 + 0.1  # backoff doubles: 0.05 s then 0.1 s


async def test_retries_run_out() -> None:
    result = await run(
        [{"id": "f", "type": "flaky", "params": {"retries": 1, "retry_backoff_s": 0}}]
    )
    assert result.nodes["f"].status == "failed"
    assert result.nodes["f"].error == "attempt 2 failed"
    assert Flaky.attempts["f"] == 2


async def test_non_retryable_failure_is_not_retried() -> None:
    result = await run(
        [
            {
                "id": "f",
                "type": "flaky",
                "params": {"retries": 3, "retryable": False, "retry_backoff_s": 0},
            }
        ]
    )
    assert result.nodes["f"].status == "failed"
    assert Flaky.attempts["f"] == 1


async def test_failure_stops_only_its_descendants() -> None:
    nodes = [
        {"id": "bad", "type": "flaky", "params": {}},
        sleep("after_bad"),
        sleep("after_after"),
        sleep("good", 0.01),
        sleep("after_good"),
    ]
    edges = [("bad.y", "after_bad.x"), ("after_bad.y", "after_after.x"), ("good.y", "after_good.x")]
    result = await run(nodes, edges)
    status = {node: state.status for node, state in result.nodes.items()}
    assert status == {
        "bad": "failed",
        "after_bad": "skipped",
        "after_after": "skipped",
        "good": "succeeded",
        "after_good": "succeeded",
    }
    assert result.nodes["after_bad"].reason == "upstream failed: bad"
    assert result.nodes["after_after"].reason == "upstream failed: after_bad"
    assert "after_bad" not in Sleep.executions
    assert result.status == "failed"


async def test_failed_source_blocks_a_many_port() -> None:
    nodes = [
        {"id": "bad", "type": "flaky", "params": {}},
        sleep("ok"),
        {"id": "j", "type": "aggregate", "params": {"mode": "list"}},
    ]
    result = await run(nodes, [("bad.y", "j.items"), ("ok.y", "j.items")])
    assert result.nodes["j"].status == "skipped"
    assert result.nodes["j"].reason == "upstream failed: bad"


def _branching(expression: str) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    nodes = [
        {"id": "n", "type": "input", "params": {"name": "n", "schema": {"type": "integer"}}},
        {"id": "c", "type": "condition", "params": {"expression": expression}},
        {"id": "big", "type": "template", "params": {"template": "big {{ v }}"}},
        {"id": "big2", "type": "template", "params": {"template": "{{ v }}!"}},
        {"id": "small", "type": "template", "params": {"template": "small {{ v }}"}},
        {"id": "join", "type": "aggregate", "params": {"mode": "list"}},
        {"id": "only_big", "type": "output", "params": {"name": "only_big"}},
        {"id": "out", "type": "output", "params": {"name": "result"}},
    ]
    edges = [
        ("n.value", "c.value"),
        ("c.true", "big.v"),
        ("big.text", "big2.v"),
        ("c.false", "small.v"),
        ("big2.text", "join.items"),
        ("small.text", "join.items"),
        ("big2.text", "only_big.value"),
        ("join.result", "out.value"),
    ]
    return nodes, edges


async def test_condition_skips_the_branch_not_taken() -> None:
    nodes, edges = _branching("value > 10")
    result = await run(nodes, edges, inputs={"n": 3})
    status = {node: state.status for node, state in result.nodes.items()}
    assert status["c"] == "succeeded"
    assert result.nodes["c"].output == {"false": 3}
    assert (status["big"], status["big2"], status["only_big"]) == ("skipped",) * 3
    assert result.nodes["big"].reason == "upstream skipped: c.true"
    assert status["small"] == "succeeded"
    assert status["join"] == "succeeded"  # a many port omits skipped sources
    assert result.outputs == {"result": ["small 3"]}
    assert result.status == "succeeded"

    result = await run(nodes, edges, inputs={"n": 30})
    assert result.outputs == {"only_big": "big 30!", "result": ["big 30!"]}
    assert result.nodes["small"].status == "skipped"


async def test_many_port_with_every_source_skipped_is_skipped() -> None:
    nodes = [
        {
            "id": "n",
            "type": "input",
            "params": {"name": "n", "schema": {"type": "integer"}, "default": 1},
        },
        {"id": "c", "type": "condition", "params": {"expression": "false"}},
        {"id": "join", "type": "aggregate", "params": {"mode": "list"}},
    ]
    result = await run(nodes, [("n.value", "c.value"), ("c.true", "join.items")])
    assert result.nodes["join"].status == "skipped"
    assert result.nodes["join"].reason == "every source of items was skipped"


async def test_cancel_stops_in_flight_work_and_pending_nodes() -> None:
    plan = compile_plan(
        workflow([sleep("a", 10), sleep("b", 10), sleep("after")], [("a.y", "after.x")]),
        test_registry(),
    )
    events: list[AnyEvent] = []
    execution = new_execution(plan, {}, run_id="run_c", listeners=[events.append])
    task = asyncio.create_task(execution.execute())
    await asyncio.sleep(0.05)
    loop = asyncio.get_running_loop()
    cancelled_at = loop.time()
    execution.cancel()
    result = await task
    assert loop.time() - cancelled_at < 1
    assert result.status == "cancelled"
    assert {node: state.status for node, state in result.nodes.items()} == {
        "a": "cancelled",
        "b": "cancelled",
        "after": "cancelled",
    }
    assert "after" not in Sleep.executions
    assert isinstance(events[-1], RunFinished)
    assert events[-1].status == "cancelled"


async def test_cancelling_the_awaiting_task_cancels_the_nodes() -> None:
    plan = compile_plan(workflow([sleep("a", 10)]), test_registry())
    execution = new_execution(plan, {}, run_id="run_c")
    task = asyncio.create_task(execution.execute())
    await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert execution.states["a"].status == "cancelled"


async def test_events_in_order_with_sequence_numbers() -> None:
    events: list[AnyEvent] = []
    await run([{"id": "s", "type": "stream", "params": {"text": "one two three"}}], events=events)
    assert isinstance(events[0], RunStarted)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert [e.text for e in events if isinstance(e, NodeToken)] == ["one", "two", "three"]
    completed = [e for e in events if isinstance(e, NodeCompleted)]
    assert completed[0].output == {"text": "one two three"}
    assert isinstance(events[-1], RunFinished)


class Recorder:
    """A `ResultStore` that notes what each commit held, and the events stored by then."""

    def __init__(self, order: list[str]) -> None:
        self.order = order
        self.pending: list[AnyEvent] = []

    def event(self, event: AnyEvent) -> None:
        self.pending.append(event)

    async def node_finished(self, run_id: str, node_id: str, state: Any) -> None:
        await asyncio.sleep(0)
        self.order.append(f"stored {node_id} {state.status}")

    async def run_finished(
        self, run_id: str, *, last: Any, events: list[AnyEvent], **values: Any
    ) -> None:
        await asyncio.sleep(0)
        stored = [type(event).__name__ for event in events]
        if last is not None:
            self.order.append(f"stored {last[0]} {last[1].status} with the end {stored}")
        else:
            self.order.append(f"stored the end {stored}")


def announced(order: list[str]) -> Callable[[AnyEvent], None]:
    def listen(event: AnyEvent) -> None:
        if isinstance(event, NodeCompleted | NodeSkipped | NodeFailed):
            order.append(f"event {event.node}")
        elif isinstance(event, RunFinished):
            order.append("event end")

    return listen


async def test_store_commits_before_the_event() -> None:
    order: list[str] = []
    plan = compile_plan(
        workflow([sleep("a"), {"id": "f", "type": "flaky", "params": {}}, sleep("b", 0.05)]),
        test_registry(),
    )
    listen = announced(order)
    await new_execution(plan, {}, run_id="r", listeners=[listen], store=Recorder(order)).execute()
    assert order.index("stored a succeeded") < order.index("event a")
    assert order.index("stored f failed") < order.index("event f")
    # b ends last: its result is committed with the run's end, its events stored in that commit
    assert order[-3:] == [
        "stored b succeeded with the end ['NodeCompleted', 'RunFinished']",
        "event b",
        "event end",
    ]


async def test_the_end_alone_when_nodes_were_cancelled() -> None:
    order: list[str] = []
    plan = compile_plan(workflow([sleep("a", 5)]), test_registry())
    execution = new_execution(
        plan, {}, run_id="r", listeners=[announced(order)], store=Recorder(order)
    )
    task = asyncio.ensure_future(execution.execute())
    await asyncio.sleep(0.05)
    execution.interrupt()
    result = await task
    assert result.status == "interrupted"
    assert order == ["stored a cancelled", "stored the end ['RunFinished']", "event end"]


async def test_a_failing_store_fails_the_run() -> None:
    class Broken(Recorder):
        async def node_finished(self, run_id: str, node_id: str, state: Any) -> None:
            raise OSError("disk full")

    plan = compile_plan(workflow([sleep("a"), sleep("b", 1)], [("a.y", "b.x")]), test_registry())
    result = await new_execution(plan, {}, run_id="r", store=Broken([])).execute()
    assert result.status == "failed"
    assert result.error == "run aborted at node a: OSError: disk full"


async def test_an_end_that_cannot_be_stored_is_not_announced() -> None:
    class Broken(Recorder):
        async def run_finished(self, run_id: str, **values: Any) -> None:
            raise OSError("disk full")

    order: list[str] = []
    plan = compile_plan(workflow([sleep("a")]), test_registry())
    execution = new_execution(
        plan, {}, run_id="r", listeners=[announced(order)], store=Broken(order)
    )
    with pytest.raises(OSError, match="disk full"):
        await execution.execute()
    assert order == []  # nor the last result, which was to be committed with it


async def test_a_broken_listener_does_not_break_the_run() -> None:
    def broken(event: AnyEvent) -> None:
        raise RuntimeError("listener bug")

    plan = compile_plan(workflow([sleep("a")]), test_registry())
    result = await new_execution(plan, {}, run_id="r", listeners=[broken]).execute()
    assert result.status == "succeeded"


async def test_output_that_is_not_json_fails_clearly() -> None:
    from engine.nodes.types import NodeContext, NodeType, Port

    class Bad(NodeType):
        type = "bad"
        title = "Bad"
        outputs = (Port("y"),)

        async def run(self, inputs: dict[str, Any], context: NodeContext) -> dict[str, Any]:
            return {"y": object()}

    registry = test_registry()
    registry.register(Bad)
    plan = compile_plan(workflow([{"id": "b", "type": "bad"}]), registry)
    result = await new_execution(plan, {}, run_id="r").execute()
    assert result.nodes["b"].error == "output 'y' is not JSON-serialisable (object)"

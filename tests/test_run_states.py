"""Node states: a record shows every field a state has for users, a result taken over keeps its
value and nothing of how it was computed, and a rerun holds the results it takes over as their
states in the runs they come from and shows them as taken over (`RunStates`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec

from engine.documents.graph import compile_plan
from engine.execution.results import NodeState, RunStates, reused_from
from engine.records import NodeRecord
from tests.support.documents import workflow
from tests.support.engine import new_execution
from tests.support.nodes import test_registry

NODES: list[dict[str, Any]] = [
    {"id": "a", "type": "template", "params": {"template": "a"}},
    {"id": "b", "type": "template", "params": {"template": "{{ text }} b"}},
    {"id": "c", "type": "template", "params": {"template": "{{ text }} c"}},
]
EDGES = [("a.text", "b.text"), ("b.text", "c.text")]


async def test_a_rerun_holds_what_it_takes_over_and_shows_it_taken_over() -> None:
    plan = compile_plan(workflow(NODES, EDGES), test_registry())
    parent = await new_execution(plan, {}, run_id="run_p").execute()
    priors = dict(parent.nodes.held)
    child = await new_execution(plan, {}, run_id="run_c", reuse=priors, force={"c"}).execute()

    assert child.nodes.held["a"] is priors["a"]  # not copied
    assert priors["a"].status == "succeeded"  # nor changed
    shown = child.nodes["a"]
    assert (shown.status, shown.reason) == ("cached", reused_from("run_p"))
    assert (shown.output, shown.cache_key) == (priors["a"].output, priors["a"].cache_key)
    assert shown.started_at == shown.finished_at is not None
    assert child.nodes["c"].status == "succeeded"
    assert child.nodes["c"] is child.nodes.held["c"]
    assert dict(child.nodes) == {**child.nodes}  # a mapping like any other
    # The records, made directly, are those of the states shown.
    assert child.nodes.records() == {node: state.record() for node, state in child.nodes.items()}


def test_states_of_a_run_that_took_nothing_over_are_its_own() -> None:
    state = NodeState(status="succeeded", origin_run_id="run_x")
    states = RunStates({"a": state})
    assert states["a"] is state
    assert states.records() == {"a": state.record()}


def test_a_node_state_shows_every_field_of_its_record() -> None:
    values = {name: f"v-{name}" for name in NodeRecord.__struct_fields__}
    state = NodeState(**values, digests={"x": "d"}, origin_run_id="run_x")  # type: ignore[arg-type]
    assert msgspec.structs.asdict(state.record()) == values


def test_a_result_taken_over_keeps_its_value_and_nothing_of_how_it_was_computed() -> None:
    values = {name: f"v-{name}" for name in NodeState.__struct_fields__}
    at = datetime.now(UTC)
    taken = NodeState(**values).taken_over("reused from run v", at)  # type: ignore[arg-type]
    # A body node's progress tells how its instances ended: it stands with its output.
    kept = ("cache_key", "output", "digests", "origin_run_id", "progress")
    assert msgspec.structs.asdict(taken) == {  # every field: a new one must be decided on
        **{name: values[name] for name in kept},
        "status": "cached",
        "reason": "reused from run v",
        "reason_code": "reused",
        "error": None,
        "attempt": 0,
        "started_at": at,
        "finished_at": at,
        "duration_ms": 0.0,
        "usage": None,
    }

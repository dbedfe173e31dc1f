"""Running a body node (SPEC §12) inside a run: each instance of its body (an item, an
iteration, the one run of a subgraph) is expanded into the run's nodes under its path
(``m[3]/``) when it starts, and its nodes are settled like any other; when every node of an
instance has settled, its outcome tells the body node what comes next (`BodyRun`)."""

from __future__ import annotations

import re
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import replace
from typing import Any

import msgspec

from engine.documents.digest import digest
from engine.documents.plan import Plan, PlanNode
from engine.errors import NodeFailure
from engine.execution.lifecycle import RunScope, check_output
from engine.execution.results import REUSABLE, NodeState
from engine.nodes.body import Body, BodyNode, Outcome
from engine.storage.keys import now

__all__ = [
    "NO_WAITS_INSIDE",
    "BodyPaths",
    "BodyRun",
    "Instance",
    "KeyIfReady",
    "Prefixed",
    "Tally",
    "answered",
    "enclosing",
    "first_instances",
    "instance_prefix",
    "limit_of",
    "outcome_of",
    "reusable_instances",
    "same_body_instances",
]


NO_WAITS_INSIDE = "a node cannot wait for an answer inside a map, loop or subgraph"
_LAST_INDEX = re.compile(r"(\[\d+\]|#\d+)$")


def instance_prefix(path: str) -> str:
    """The path prefix of the instance a node of a body is part of (``m[3]/s/llm`` →
    ``m[3]/s/``); empty for a top-level node."""
    return path[: path.rfind("/") + 1]


def enclosing(path: str) -> list[str]:
    """The body nodes a node is inside, outermost first (``m[3]/s/llm`` → ``m``, ``m[3]/s``)."""
    found = []
    prefix = instance_prefix(path)
    while prefix:
        body_node = _LAST_INDEX.sub("", prefix[:-1])
        found.append(body_node)
        prefix = instance_prefix(body_node)
    return found[::-1]


class BodyPaths(Mapping[str, PlanNode]):
    """A plan's nodes by path, those inside its bodies' instances too (``m[3]/llm``): what
    executes a run one node at a time, on workers, looks them up here. An instance's nodes are
    made once, when one of them is first asked for."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self._instances: dict[str, dict[str, PlanNode]] = {}

    def __getitem__(self, path: str) -> PlanNode:
        found = self.plan.nodes.get(path)
        if found is not None:
            return found
        prefix = instance_prefix(path)
        if not prefix:
            raise KeyError(path)
        return self.instance(prefix)[path]

    @staticmethod
    def body_node_of(prefix: str) -> str:
        """The path of the body node an instance prefix belongs to (``m[3]/`` → ``m``)."""
        return _LAST_INDEX.sub("", prefix[:-1])

    def instance(self, prefix: str) -> dict[str, PlanNode]:
        """The nodes of the instance under ``prefix``, by path."""
        nodes = self._instances.get(prefix)
        if nodes is None:
            body = self[self.body_node_of(prefix)].body
            if body is None:
                raise KeyError(prefix)
            nodes = self._instances[prefix] = {node.id: node for node in body.instance(prefix)}
        return nodes

    def __iter__(self) -> Iterator[str]:
        return iter(self.plan.nodes)

    def __len__(self) -> int:
        return len(self.plan.nodes)


class Prefixed(Mapping[str, NodeState]):
    """The states under a path prefix, by the ids of the body's own nodes."""

    __slots__ = ("_prefix", "_states")

    def __init__(self, states: Mapping[str, NodeState], prefix: str) -> None:
        self._states = states
        self._prefix = prefix

    def __getitem__(self, node_id: str) -> NodeState:
        return self._states[self._prefix + node_id]

    def __contains__(self, node_id: object) -> bool:
        return isinstance(node_id, str) and self._prefix + node_id in self._states

    def __iter__(self) -> Iterator[str]:
        size = len(self._prefix)
        return (key[size:] for key in self._states if key.startswith(self._prefix))

    def __len__(self) -> int:
        return sum(1 for _ in self)


class Instance:
    """One run of a body: its path, its nodes, how many of them have not settled, the body
    node's run it is part of, and the scope its nodes run in (the body node's, with the
    instance's inputs)."""

    __slots__ = ("index", "left", "nodes", "prefix", "run", "scope")

    def __init__(
        self, index: int, prefix: str, nodes: list[PlanNode], run: BodyRun, scope: RunScope
    ) -> None:
        self.index = index
        self.prefix = prefix
        self.nodes = nodes
        self.left = len(nodes)
        self.run = run
        self.scope = scope


class Tally(msgspec.Struct):
    """What a body node's run has counted: the instances known so far (``count``), those
    running, those ended (``done``, ``failed`` among them), whether it starts no more
    (``stopped``) and why the node fails whatever its instances answer (``failure``). The same
    wherever the body runs: in this process (`BodyRun`) or on workers, stored between the
    transactions that end its instances."""

    count: int
    running: int = 0
    done: int = 0
    failed: int = 0
    stopped: bool = False
    failure: str | None = None

    def progress(self) -> dict[str, int]:
        return {"done": self.done, "failed": self.failed, "total": self.count}

    def starting(self, pending: int, limit: int) -> int:
        """How many of the ``pending`` instances start now (counted as running)."""
        starting = 0 if self.stopped else max(0, min(pending, limit - self.running))
        self.running += starting
        return starting

    def ended(
        self, instance: BodyNode, inputs: dict[str, Any], outcome: Outcome
    ) -> dict[str, Any] | None:
        """Count an instance's end; returns the body inputs of the instance that follows it
        (sequential bodies), counted as known and pending."""
        self.running -= 1
        self.done += 1
        if outcome.outputs is None:
            self.failed += 1
            self.stopped = self.stopped or instance.stops_on_failure()
        if instance.sequential and not self.stopped:
            try:
                following = instance.following(inputs, outcome)
            except NodeFailure as exc:
                self.failure, self.stopped = exc.detail, True
                return None
            if following is not None:
                self.count += 1
                return following
        return None

    def finished(self, pending: int) -> bool:
        """Whether the node can be answered, with ``pending`` instances not started."""
        return self.running == 0 and (self.stopped or pending == 0)

    def answer(
        self, instance: BodyNode, inputs: dict[str, Any], outcomes: list[Outcome], body: Body
    ) -> dict[str, Any]:
        """The node's outputs; `NodeFailure` when it fails."""
        if self.failure is not None:
            raise NodeFailure(self.failure, retryable=False)
        ordered = sorted(outcomes, key=lambda outcome: outcome.index)
        return instance.answer(inputs, ordered, body)


def first_instances(
    node: PlanNode, instance: BodyNode, inputs: dict[str, Any], max_items: int
) -> list[dict[str, Any]]:
    """The body inputs of a body node's first instances; `NodeFailure` for inputs its body
    cannot run on, or more instances than ``max_items``."""
    assert node.body is not None
    first = instance.instances(inputs, node.body.body_ports())
    if len(first) > max_items:
        raise NodeFailure(
            f"{len(first)} items, more than the {max_items} a body may run "
            "(NODELOOM_MAP_MAX_ITEMS)",
            retryable=False,
        )
    return first


def limit_of(instance: BodyNode) -> int:
    """How many instances of the node's body may run at once."""
    return 1 if instance.sequential else max(1, instance.concurrency())


class BodyRun:
    """A body node while its body runs in this process: the instances waiting to start, those
    running, and the outcomes of those that ended. The executor starts what `next_instances`
    gives and reports each instance's end to `ended`; `done` tells when the node can be
    answered."""

    def __init__(
        self,
        node: PlanNode,
        state: NodeState,
        *,
        instance: BodyNode,
        inputs: dict[str, Any],
        first: list[dict[str, Any]],
        scope: RunScope,
    ) -> None:
        assert node.body is not None
        self.node = node
        self.scope = scope  # the body node's: its nodes' is this, with their instance's inputs
        self.state = state
        self.instance = instance
        self.inputs = inputs
        self.body: Plan = node.body
        self.ports: Body = node.body.body_ports()
        self._pending: deque[tuple[int, dict[str, Any]]] = deque(enumerate(first))
        self.tally = Tally(len(first))
        self.outcomes: list[Outcome] = []
        self._limit = limit_of(instance)
        state.progress = self.tally.progress()

    def next_instances(self) -> list[Instance]:
        """The instances to start now, their nodes made under their path prefix."""
        starting = self.tally.starting(len(self._pending), self._limit)
        made = []
        for _ in range(starting):
            index, inputs = self._pending.popleft()
            prefix = self.path(index)
            nodes = self.body.instance(prefix)
            made.append(Instance(index, prefix, nodes, self, self._scope_of(inputs, nodes)))
        return made

    def _scope_of(self, inputs: dict[str, Any], nodes: list[PlanNode]) -> RunScope:
        """The scope of an instance's nodes: the body node's, with the instance's inputs; a body
        node forced to execute runs its body again, all of it."""
        scope = self.scope
        force = scope.force
        if self.node.id in force:
            force = force | {node.id for node in nodes}
        return RunScope(scope.run_id, inputs, scope.workspace, scope.models, scope.reuse, force,
                        scope.reasons, scope.replay, scope.owner_id)  # fmt: skip

    def path(self, index: int) -> str:
        return self.instance.instance_path(self.node.id, index)

    def taken(self, instances: Iterable[tuple[int, str, Mapping[str, NodeState]]]) -> None:
        """Instances (index, path prefix, their nodes' states by path) whose every node was
        taken over from an earlier run: they have ended, before any other started, each with
        the values of its output nodes (none of its nodes failed)."""
        found = {index: (prefix, states) for index, prefix, states in instances}
        if not found:
            return
        self._pending = deque(item for item in self._pending if item[0] not in found)
        names = [(node.id, node.params["name"]) for node in self.body.by_role("output")]
        tally, outcomes = self.tally, self.outcomes
        for index in sorted(found):
            prefix, states = found[index]
            outputs = {}
            for node_id, name in names:
                output = states[prefix + node_id].output
                if output is not None and "value" in output:
                    outputs[name] = output["value"]
            outcome = Outcome(index, outputs)
            outcomes.append(outcome)
            tally.running += 1
            tally.ended(self.instance, self.inputs, outcome)  # none follows: not sequential
        self.state.progress = tally.progress()

    def ended(self, index: int, prefix: str, states: Mapping[str, NodeState]) -> None:
        """Instance ``index`` (under ``prefix``) has no node left to settle."""
        self._end(index, prefix, states)
        self.state.progress = self.tally.progress()

    def _end(self, index: int, prefix: str, states: Mapping[str, NodeState]) -> None:
        outcome = outcome_of(self.body, index, prefix, states)
        self.outcomes.append(outcome)
        following = self.tally.ended(self.instance, self.inputs, outcome)
        if following is not None:
            self._pending.append((self.tally.count - 1, following))

    @property
    def done(self) -> bool:
        return self.tally.finished(len(self._pending))

    def answer(self) -> dict[str, Any]:
        """The node's outputs; `NodeFailure` when it fails."""
        return self.tally.answer(self.instance, self.inputs, self.outcomes, self.ports)


KeyIfReady = Callable[[PlanNode, RunScope, Mapping[str, NodeState]], Awaitable[str | None]]


async def reusable_instances(
    run: BodyRun, first: list[dict[str, Any]], *, key_if_ready: KeyIfReady
) -> AsyncIterator[tuple[int, str, dict[str, NodeState]]]:
    """The instances of a body, among ``first``, whose every node has a result in the run's
    reuse that its cache key lets stand: (index, path prefix, those results by path). No node
    of the body may be ``cache: never``, read the outside world but its inputs, or run a body
    of its own. Every key is made again (``key_if_ready``); when the body is the one the reuse
    comes from, `same_body_instances` compares its inputs alone, at once."""
    body = run.body
    if not _may_take(body):
        return
    reuse = run.scope.reuse
    for index, prefix, found, inputs in _with_priors(run, first):
        view = Prefixed(reuse, prefix)
        scope = replace(run.scope, inputs=inputs)
        stands = True
        for node in body.nodes.values():
            if await key_if_ready(node, scope, view) != view[node.id].cache_key:
                stands = False
                break
        if stands:
            yield index, prefix, found


def same_body_instances(
    run: BodyRun, first: list[dict[str, Any]]
) -> list[tuple[int, str, dict[str, NodeState]]]:
    """`reusable_instances` of a body the reuse comes from: those whose inputs' digests are
    their input nodes' outputs' in the reuse (nothing awaited)."""
    if not _may_take(run.body):
        return []
    entries = [(node.id, node.params["name"]) for node in run.body.by_role("input")]
    taken = []
    for index, prefix, found, inputs in _with_priors(run, first):
        for node_id, name in entries:
            digests = found[prefix + node_id].digests
            if digests is None or digests.get("value") != digest(inputs.get(name)):
                break
        else:
            taken.append((index, prefix, found))
    return taken


def _may_take(body: Plan) -> bool:
    """Whether an instance of ``body`` may be taken over whole (see `reusable_instances`)."""
    never, outside = body.special()
    inputs_only = all(body.nodes[node_id].node_type.role == "input" for node_id in outside)
    return not never and inputs_only and not body.has_bodies


def _with_priors(
    run: BodyRun, first: list[dict[str, Any]]
) -> Iterator[tuple[int, str, dict[str, NodeState], dict[str, Any]]]:
    """The instances among ``first`` whose every node has a reusable result in the run's
    reuse: (index, path prefix, those results by path, body inputs)."""
    get, path_of = run.scope.reuse.get, run.path  # a map's thousands of items: looked up once
    node_ids = list(run.body.nodes)
    for index, inputs in enumerate(first):
        prefix = path_of(index)
        found = {}
        for node_id in node_ids:
            path = prefix + node_id
            prior = get(path)
            if prior is None or not prior.origin_run_id or prior.status not in REUSABLE:
                break
            found[path] = prior
        else:
            yield index, prefix, found, inputs


def answered(
    node: PlanNode, state: NodeState, run_id: str, answer: Callable[[], dict[str, Any]]
) -> None:
    """A body node's final state, once every instance it runs has ended: ``answer()``'s
    outputs, or the failure it raises."""
    try:
        output = answer()
        state.digests = check_output(node, output)
    except NodeFailure as exc:
        state.fail(exc.detail, now())
    else:
        state.status, state.output, state.origin_run_id = "succeeded", output, run_id
        state.finished_at = now()
    started = state.started_at or state.finished_at
    if started is not None and state.finished_at is not None:
        state.duration_ms = (state.finished_at - started).total_seconds() * 1000


def outcome_of(body: Plan, index: int, prefix: str, states: Mapping[str, NodeState]) -> Outcome:
    """How an instance ended: its output nodes' values by name, or the error of the first
    of its nodes that failed (by path)."""
    for node_id in body.nodes:
        state = states[prefix + node_id]
        if state.status in ("failed", "cancelled"):
            return Outcome(index, None, f"{prefix}{node_id}: {state.error or state.status}")
    outputs = {}
    for node in body.by_role("output"):
        state = states[prefix + node.id]
        if state.output is not None and "value" in state.output:
            outputs[node.params["name"]] = state.output["value"]
    return Outcome(index, outputs)

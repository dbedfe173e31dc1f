"""Running a body node (SPEC §12) inside a run: each instance of its body (an item, an
iteration, the one run of a subgraph) is expanded into the run's nodes under its path
(``m[3]/``) when it starts, and its nodes are settled like any other; when every node of an
instance has settled, its outcome tells the body node what comes next (`BodyRun`)."""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import replace
from typing import Any

from engine.documents.digest import digest
from engine.documents.plan import Plan, PlanNode
from engine.errors import NodeFailure
from engine.execution.lifecycle import RunScope
from engine.execution.results import REUSABLE, NodeState
from engine.nodes.body import Body, BodyNode, Outcome

__all__ = [
    "BodyRun",
    "Instance",
    "KeyIfReady",
    "Prefixed",
    "outcome_of",
    "relabel",
    "reusable_instances",
]


def relabel(body: Plan, prefix: str) -> list[PlanNode]:
    """The body's nodes as nodes of the run, under ``prefix``, in the body's order (made for
    every item of a map: positionally, which costs half what keywords do)."""
    return [
        PlanNode(
            prefix + node.id,
            node.index,
            node.node_type,
            node.params,
            node.settings,
            node.inputs,
            node.outputs,
            {
                port: [(prefix + source, out) for source, out in found]
                for port, found in node.sources.items()
            }
            if node.sources
            else {},
            [prefix + successor for successor in node.successors],
            [prefix + predecessor for predecessor in node.predecessors],
            node.key_material,
            node.body,
        )
        for node in body.nodes.values()
    ]


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
    """One run of a body: its path, its nodes, and how many of them have not settled."""

    __slots__ = ("index", "left", "nodes", "prefix")

    def __init__(self, index: int, prefix: str, nodes: list[PlanNode]) -> None:
        self.index = index
        self.prefix = prefix
        self.nodes = nodes
        self.left = len(nodes)


class BodyRun:
    """A body node while its body runs: the instances waiting to start, those running, and
    the outcomes of those that ended. The executor starts what `next_instances` gives and
    reports each instance's end to `ended`; `done` tells when the node can be answered."""

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
        self._count = len(first)  # instances known so far
        self._running = 0
        self._stopped = False
        self.outcomes: list[Outcome] = []
        self.failure: str | None = None  # why the node fails whatever its answer
        self._limit = 1 if instance.sequential else max(1, instance.concurrency())
        state.progress = {"done": 0, "failed": 0, "total": len(first)}

    def next_instances(self) -> list[tuple[int, str, dict[str, Any]]]:
        """The instances to start now: (index, path prefix, body inputs)."""
        starting = []
        while self._pending and not self._stopped and self._running < self._limit:
            index, inputs = self._pending.popleft()
            self._running += 1
            starting.append((index, self.path(index), inputs))
        return starting

    def path(self, index: int) -> str:
        return self.instance.instance_path(self.node.id, index)

    def taken(self, instances: Iterable[tuple[int, str]], states: Mapping[str, NodeState]) -> None:
        """Instances (index, path prefix) whose every node was taken over from an earlier run:
        they have ended, before any other started."""
        found = dict(instances)
        if not found:
            return
        self._pending = deque(item for item in self._pending if item[0] not in found)
        for index, prefix in sorted(found.items()):
            self._running += 1
            self.ended(index, prefix, states)

    def ended(self, index: int, prefix: str, states: Mapping[str, NodeState]) -> None:
        """Instance ``index`` (under ``prefix``) has no node left to settle."""
        self._running -= 1
        outcome = outcome_of(self.body, index, prefix, states)
        self.outcomes.append(outcome)
        progress = self.state.progress or {}
        progress["done"] += 1
        if outcome.outputs is None:
            progress["failed"] += 1
            self._stopped = self._stopped or self.instance.stops_on_failure()
        if self.instance.sequential and not self._stopped:
            try:
                following = self.instance.following(self.inputs, outcome)
            except NodeFailure as exc:
                self.failure, self._stopped = exc.detail, True
                return
            if following is not None:
                self._pending.append((self._count, following))
                self._count += 1
                progress["total"] += 1

    @property
    def done(self) -> bool:
        return self._running == 0 and (self._stopped or not self._pending)

    def answer(self) -> dict[str, Any]:
        """The node's outputs; `NodeFailure` when it fails."""
        if self.failure is not None:
            raise NodeFailure(self.failure, retryable=False)
        outcomes = sorted(self.outcomes, key=lambda outcome: outcome.index)
        return self.instance.answer(self.inputs, outcomes, self.ports)


KeyIfReady = Callable[[PlanNode, RunScope, Mapping[str, NodeState]], Awaitable[str | None]]


async def reusable_instances(
    run: BodyRun, first: list[dict[str, Any]], *, same_body: bool, key_if_ready: KeyIfReady
) -> AsyncIterator[tuple[int, str, dict[str, NodeState]]]:
    """The instances of a body, among ``first``, whose every node has a result in the run's
    reuse that its cache key lets stand: (index, path prefix, those results by path). No node
    of the body may be ``cache: never``, read the outside world but its inputs, or run a body
    of its own.

    When the body is the one the reuse comes from (``same_body``: its body node is not among
    the run's changed nodes), a key is what it was exactly when the inputs are: only the
    body's inputs are compared. Otherwise every key is made again (``key_if_ready``)."""
    body = run.body
    never, outside = body.special()
    inputs_only = all(body.nodes[node_id].node_type.role == "input" for node_id in outside)
    if never or not inputs_only or body.has_bodies:
        return
    entries = body.by_role("input")
    reuse = run.scope.reuse
    for index, inputs in enumerate(first):
        prefix = run.path(index)
        priors = {prefix + node_id: reuse.get(prefix + node_id) for node_id in body.nodes}
        found = {path: p for path, p in priors.items() if p is not None}
        if len(found) < len(priors) or not all(
            p.origin_run_id and p.status in REUSABLE for p in found.values()
        ):
            continue
        if same_body:
            stands = all(
                (found[prefix + node.id].digests or {}).get("value")
                == digest(inputs.get(node.params["name"]))
                for node in entries
            )
        else:
            view = Prefixed(reuse, prefix)
            scope = replace(run.scope, inputs=inputs)
            stands = True
            for node in body.nodes.values():
                if await key_if_ready(node, scope, view) != view[node.id].cache_key:
                    stands = False
                    break
        if stands:
            yield index, prefix, found


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

"""One node's way through a run, the same wherever it executes (in this process or on a worker):
gather its inputs, make it and its cache key, decide whether an earlier result stands for it (and
why not), then execute it attempt after attempt within its timeout, retrying with backoff.

Where it executes differs only in its `Attempts`: how an attempt begins and is announced, how a
failure to be retried is announced, and how the run's cancellation stops it. The caller commits
the state the node ends in and announces it."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, TypeVar

from engine.documents.digest import canonical, digest
from engine.documents.plan import PlanNode
from engine.errors import NodeFailure, NodeWaits, describe
from engine.execution.reasons import Reason
from engine.execution.replays import Replay, replayed
from engine.execution.results import REUSABLE, NodeState
from engine.nodes.body import template
from engine.nodes.types import NodeContext, NodeType
from engine.storage.keys import now

if TYPE_CHECKING:
    from engine.models import ModelService

__all__ = [
    "Attempts",
    "NodeCancelled",
    "NodeLost",
    "NodeStopped",
    "Prepared",
    "RunScope",
    "cache_key",
    "check_output",
    "execute",
    "gather",
    "key_if_ready",
    "parked",
    "prepare",
    "reason_to_execute",
    "reusable",
    "run_once",
    "settle",
    "take_prior",
]

T = TypeVar("T")


class NodeStopped(Exception):
    """A node's execution stopped before it had an outcome of its own."""


class NodeCancelled(NodeStopped):
    """The node's run was cancelled while the node executed: it ends ``cancelled``, in
    ``attempt`` when one had begun that its executor did not return."""

    def __init__(self, attempt: int | None = None) -> None:
        super().__init__()
        self.attempt = attempt


class NodeLost(NodeStopped):
    """Another executor has taken the node over: what it does here counts for nothing."""


class Attempts(Protocol):
    """How a node's attempts go where it executes."""

    async def begin(self, node_id: str, previous: int) -> int:
        """Begin the attempt after ``previous`` (0: none yet) and announce it (``node.started``);
        returns its number. Raises `NodeCancelled` or `NodeLost` when the node must stop."""
        ...

    def retrying(self, node_id: str, attempt: int, error: str) -> None:
        """Announce that ``attempt`` failed with ``error`` and the node will be tried again."""

    def run(self, work: Awaitable[T]) -> Awaitable[T]:
        """An attempt's work or its backoff, to be awaited; `NodeCancelled` when the run is
        cancelled meanwhile (in this process, the task is cancelled instead)."""
        ...


@dataclass(frozen=True, slots=True, eq=False)
class RunScope:
    """What every node of one run shares: the run, its inputs, where file nodes work, the
    models, and for a rerun what it may take over (``reuse``, by node), what it must execute
    (``force``) and why nodes execute when the documents already tell (``reasons``)."""

    run_id: str
    inputs: Mapping[str, Any]
    workspace: Path
    models: ModelService | None = None
    reuse: Mapping[str, NodeState] = field(default_factory=dict)
    force: frozenset[str] = frozenset()
    reasons: Mapping[str, Reason] = field(default_factory=dict)
    replay: Replay | None = None
    owner_id: str | None = None


class Prepared(NamedTuple):
    """What executing a node needs: its instance, its input values and its context."""

    instance: NodeType
    inputs: dict[str, Any]
    context: NodeContext


async def settle(
    node: PlanNode,
    state: NodeState,
    scope: RunScope,
    states: Mapping[str, NodeState],
    *,
    attempts: Attempts,
    emit_token: Callable[[str], None],
) -> Prepared | None:
    """Take the node to its final state in ``state``: skipped, failed to set up, taken over from
    ``scope.reuse``, or executed. ``states`` holds its predecessors' final states.

    A body node (engine/nodes/body.py) is not executed: it is returned, prepared, for the
    caller to run its body."""
    prepared = await prepare(node, state, scope, states, emit_token)
    if prepared is None:
        return None
    if scope.replay is not None and node.node_type.recordable:
        if replayed(node, state, scope.replay, states):
            return None
    elif take_prior(node, state, scope, states):
        return None
    if node.body is not None:
        return prepared
    await execute(node, state, prepared, attempts)
    return None


async def prepare(
    node: PlanNode,
    state: NodeState,
    scope: RunScope,
    states: Mapping[str, NodeState],
    emit_token: Callable[[str], None],
) -> Prepared | None:
    """Gather the node's inputs, make it and its cache key (in ``state``); None when that
    settled it: skipped for want of an input, or failed in its own set-up."""
    gathered = gather(node, states)
    if isinstance(gathered, Reason):
        state.skip(gathered, now())
        return None
    inputs, input_digests = gathered
    context = NodeContext(
        run_id=scope.run_id,
        node_id=node.id,
        attempt=0,
        run_inputs=scope.inputs,
        emit_token=emit_token,
        workspace=scope.workspace,
        models=scope.models,
        owner_id=scope.owner_id,
    )
    try:
        instance = node.node_type(node.params)
        fingerprint = (
            await instance.fingerprint(inputs, context)
            if node.node_type.reads_outside_world
            else None
        )
    except Exception as exc:  # noqa: BLE001 - a node's own set-up failed
        state.fail(describe(exc), now())
        return None
    state.cache_key = cache_key(node, input_digests, fingerprint)
    return Prepared(instance, inputs, context)


def take_prior(
    node: PlanNode, state: NodeState, scope: RunScope, states: Mapping[str, NodeState]
) -> bool:
    """Take over the node's earlier result when it may stand for this one (True); otherwise
    say in ``state`` why the node executes."""
    prior = scope.reuse.get(node.id)
    if prior is not None and reusable(node, state.cache_key, prior, scope.force):
        state.take_over(prior, now())
        return True
    reason = reason_to_execute(node, prior, states, scope)
    if reason is not None:
        state.because(reason)
    return False


async def execute(node: PlanNode, state: NodeState, prepared: Prepared, attempts: Attempts) -> None:
    """Run the node until it succeeds, or fails with no retries left (retryable failures are
    retried after ``retry_backoff_s``, doubling), or its run is cancelled; ``state`` holds the
    outcome. `NodeLost` goes to the caller."""
    instance, inputs, context = prepared
    settings = node.settings
    tries = 0
    try:
        while True:
            context.attempt = state.attempt = await attempts.begin(node.id, state.attempt)
            tries += 1
            state.status, state.started_at = "running", now()
            started = time.perf_counter()
            try:
                output, digests = await attempts.run(run_once(node, instance, inputs, context))
            except NodeFailure as exc:
                error, retryable = exc.detail, exc.retryable
            else:
                state.status, state.origin_run_id = "succeeded", context.run_id
                state.output, state.digests, state.usage = output, digests, context.usage
                if context.reason is not None:
                    state.because(context.reason)
                state.finished_at = now()
                state.duration_ms = (time.perf_counter() - started) * 1000
                return
            state.duration_ms = (time.perf_counter() - started) * 1000
            if not (retryable and tries <= settings.retries):
                state.fail(error, now())
                return
            attempts.retrying(node.id, state.attempt, error)
            await attempts.run(asyncio.sleep(settings.retry_backoff_s * 2 ** (tries - 1)))
    except NodeCancelled as stopped:
        if stopped.attempt is not None:
            context.attempt = state.attempt = stopped.attempt
        state.cancel(now())


# -- what a node consumes and produces ---------------------------------------------------


def gather(
    node: PlanNode, states: Mapping[str, NodeState]
) -> tuple[dict[str, Any], dict[str, Any]] | Reason:
    """The node's input values and their digests, or why it is skipped: a failed predecessor
    (or one skipped because of a failure), a skipped source on a required single port, or every
    source of a `many` port."""
    for predecessor in node.predecessors:
        if states[predecessor].blocks:
            return Reason("upstream_failed", (predecessor,))
    values: dict[str, Any] = {}
    digests: dict[str, Any] = {}
    for name, port in node.inputs.items():
        sources = node.sources.get(name)
        if sources is None:
            if port.has_default:
                values[name] = port.default
                digests[name] = digest(port.default)
            continue
        if port.many:
            items: list[Any] = []
            item_digests: list[str] = []
            for source, source_port in sources:
                output = states[source].output
                if output is not None and source_port in output:
                    items.append(output[source_port])
                    item_digests.append(states[source].digests[source_port])  # type: ignore[index]
            if not items:
                return Reason("sources_skipped", (name,))
            values[name], digests[name] = items, item_digests
            continue
        source, source_port = sources[0]
        output = states[source].output
        if output is not None and source_port in output:
            values[name] = output[source_port]
            digests[name] = states[source].digests[source_port]  # type: ignore[index]
        elif port.required:
            return Reason("upstream_skipped", (f"{source}.{source_port}",))
        elif port.has_default:
            values[name] = port.default
            digests[name] = digest(port.default)
    return values, digests


async def key_if_ready(
    node: PlanNode, scope: RunScope, states: Mapping[str, NodeState]
) -> str | None:
    """The node's cache key, made as it would be to run it (in ``scope``, after ``states``);
    None when it cannot run."""
    if node.node_type.reads_outside_world:
        state = NodeState()
        prepared = await prepare(node, state, scope, states, _no_tokens)
        return None if prepared is None else state.cache_key
    gathered = gather(node, states)  # the key alone: no instance
    return None if isinstance(gathered, Reason) else cache_key(node, gathered[1], None)


def _no_tokens(text: str) -> None:
    """A node made only for its cache key streams nothing."""


def cache_key(node: PlanNode, input_digests: dict[str, Any], fingerprint: str | None) -> str:
    """SHA-256 over type, version and params (``key_material``), input digests, fingerprint."""
    key = hashlib.sha256(node.key_material)
    key.update(canonical(input_digests))
    if fingerprint is not None:
        key.update(fingerprint.encode())
    return key.hexdigest()


def check_output(node: PlanNode, output: Any) -> dict[str, str]:
    """The digest of each output value; a `NodeFailure` for anything but a dict of declared,
    JSON-serialisable outputs."""
    if not isinstance(output, dict):
        raise NodeFailure(
            f"returned {type(output).__name__}, not a dict of outputs", retryable=False
        )
    digests: dict[str, str] = {}
    for port, value in output.items():
        if port not in node.outputs and not (node.node_type.role == "output" and port == "value"):
            raise NodeFailure(f"returned unknown output {port!r}", retryable=False)
        try:
            digests[port] = digest(value)
        except TypeError:
            raise NodeFailure(
                f"output {port!r} is not JSON-serialisable ({type(value).__name__})",
                retryable=False,
            ) from None
    return digests


async def run_once(
    node: PlanNode, instance: NodeType, inputs: dict[str, Any], context: NodeContext
) -> tuple[dict[str, Any], dict[str, str]]:
    """Run the node's code once, within its timeout: its outputs and their digests. Anything
    that goes wrong is a `NodeFailure`, retryable unless the node or the check says not."""
    timeout_s = node.settings.timeout_s
    try:
        if timeout_s is None:
            output = await instance.run(inputs, context)
        else:
            try:
                async with asyncio.timeout(timeout_s):
                    output = await instance.run(inputs, context)
            except TimeoutError:
                raise NodeFailure(f"timed out after {timeout_s:g} s", retryable=True) from None
    except (NodeFailure, NodeWaits):  # a person's answer is awaited by the executor
        raise
    except Exception as exc:  # any error of a node's code fails the node
        raise NodeFailure(describe(exc), retryable=True) from exc
    return output, check_output(node, output)


def parked(node: PlanNode, state: NodeState, question: dict[str, Any]) -> dict[str, Any]:
    """A node that raised `NodeWaits` with ``question`` waits now (SPEC §16): its state is
    `waiting`, and what it asks gains when it started waiting and, from the node's timeout,
    until when (its deadline). Executors commit both and wait for the answer."""
    state.status = "waiting"
    since = state.started_at or now()
    asked = {**question, "since": since.isoformat()}
    if node.settings.timeout_s is not None:  # the node's timeout bounds its wait
        asked["deadline"] = (since + timedelta(seconds=node.settings.timeout_s)).isoformat()
    return asked


# -- reuse -------------------------------------------------------------------------------


def reusable(node: PlanNode, key: str | None, prior: NodeState, force: Collection[str]) -> bool:
    """Whether ``prior``, a node's state in an earlier run, may stand for its result in this
    run, where its cache key is ``key``."""
    return (
        prior.cache_key == key
        and prior.status in REUSABLE
        and prior.origin_run_id is not None
        and node.settings.cache == "auto"
        and node.id not in force
    )


def reason_to_execute(
    node: PlanNode,
    prior: NodeState | None,
    states: Mapping[str, NodeState],
    scope: RunScope,
) -> Reason | None:
    """Why a node of a run that may reuse results executes instead (None: a run that reuses
    nothing, where executing needs no reason)."""
    reasons, reuse = scope.reasons, scope.reuse
    if node.id in scope.force:
        return reasons.get(node.id, Reason("forced"))
    if node.settings.cache == "never":
        return Reason("cache_never")
    found = reasons.get(node.id)
    if found is None and reasons and "/" in node.id:  # in a body: what a rerun says of them all
        found = reasons.get(template(node.id))
    if found is not None:
        return found
    if prior is None or prior.status not in REUSABLE:
        return Reason("no_earlier_result") if reuse else None
    changed = tuple(
        predecessor
        for predecessor in node.predecessors
        if predecessor not in reuse or states[predecessor].digests != reuse[predecessor].digests
    )
    if changed:
        return Reason("upstream_changed", changed)
    if node.node_type.role == "input":
        return Reason("input_changed", (node.params["name"],))
    return Reason("key_changed")

"""What a node consumes and produces: its input values and their digests, its cache key, and
the check of what its `run` returned."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any

from engine.digest import canonical, digest
from engine.errors import NodeFailure
from engine.graph import PlanNode
from engine.results import NodeState

if TYPE_CHECKING:
    from nodes.base import NodeContext, NodeType


def gather(
    node: PlanNode, states: Mapping[str, NodeState], blocked: Collection[str]
) -> tuple[dict[str, Any], dict[str, Any]] | str:
    """The node's input values and their digests, or why it is skipped: a failed (``blocked``)
    predecessor, a skipped source on a required single port, or every source of a `many` port."""
    for predecessor in node.predecessors:
        if predecessor in blocked:
            return f"upstream failed: {predecessor}"
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
                return f"every source of {name} was skipped"
            values[name], digests[name] = items, item_digests
            continue
        source, source_port = sources[0]
        output = states[source].output
        if output is not None and source_port in output:
            values[name] = output[source_port]
            digests[name] = states[source].digests[source_port]  # type: ignore[index]
        elif port.required:
            return f"upstream skipped: {source}.{source_port}"
        elif port.has_default:
            values[name] = port.default
            digests[name] = digest(port.default)
    return values, digests


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
    except NodeFailure:
        raise
    except Exception as exc:  # any error of a node's code fails the node
        raise NodeFailure(describe(exc), retryable=True) from exc
    return output, check_output(node, output)


def describe(exc: BaseException) -> str:
    """An exception as one line: its type, and its message when it has one."""
    message = str(exc)
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


async def instantiate(
    node: PlanNode, inputs: Mapping[str, Any], context: NodeContext
) -> tuple[NodeType, str | None]:
    """The node's instance and, for a node reading the outside world, its fingerprint. Raises
    whatever the node's own set-up raises."""
    instance = node.node_type(node.params)
    fingerprint = (
        await instance.fingerprint(inputs, context) if node.node_type.reads_outside_world else None
    )
    return instance, fingerprint

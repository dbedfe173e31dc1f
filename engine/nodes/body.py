"""Node types that run a body (SPEC §12): a graph of their own, run once (`subgraph`), once per
item (`map`) or once per iteration until done (`loop`). The engine expands each run of the body
(an *instance*) into the run's nodes, under a path (``m[3]/``, ``lp#2/``, ``s/``), and settles
its nodes like any other; a body node type says what each instance gets and what its own
outputs are made of."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, NamedTuple

import msgspec

from engine.documents.issues import Issue
from engine.nodes.types import CheckContext, NodeContext, NodeType, Port

__all__ = ["Body", "BodyNode", "Outcome", "body_of", "saved_body", "template"]

_INDEX = re.compile(r"\[\d+\]|#\d+")


def template(path: str) -> str:
    """A path without its item and iteration numbers (``m[3]/llm`` → ``m/llm``): how rerun
    params and reasons address a body's node for every instance."""
    return _INDEX.sub("", path)


def saved_body(workflow_id: str, version: int) -> str:
    """The name under which a run's document holds a saved workflow's version it runs as a
    body (engine/runs/saved_bodies.py)."""
    return f"{workflow_id}@{version}"


def body_of(path: str) -> str:
    """The top-level node a path is inside (``m[3]/s/llm`` → ``m``)."""
    return _INDEX.sub("", path.partition("/")[0])


class Body(NamedTuple):
    """A body's ports: one input per `input` node (its ``name``, typed by its schema, optional
    when it has a default), one output per `output` node (its ``name``)."""

    inputs: tuple[Port, ...]
    outputs: tuple[Port, ...]


class Outcome(msgspec.Struct, frozen=True):
    """How one instance of a body ended: its outputs by name (an output whose node was skipped
    is left out), or the error of the inner node that failed (its path named)."""

    index: int
    outputs: dict[str, Any] | None
    error: str | None = None


class BodyNode(NodeType):
    """A node that runs the body named by its ``graph`` param. The engine asks `instances` what
    the first instances get, `following` what comes after an instance that ended, and
    `answer` what the node answers once every instance has ended; `run` is never called."""

    # How an instance's path reads after the node's id: ``[k]``, ``#k`` or nothing.
    path_format: ClassVar[str] = ""
    # Whether the instances follow one another (each may depend on the last).
    sequential: ClassVar[bool] = False
    dynamic_ports = True  # the body's (see `body_ports`)

    @classmethod
    def body_name(cls, params: Mapping[str, Any]) -> str | None:
        """The name of the body among the document's subgraphs: ``graph``, or the saved
        workflow's (``workflow`` at ``version``) once it is copied in."""
        name, saved, version = params.get("graph"), params.get("workflow"), params.get("version")
        if isinstance(name, str):
            return name
        if isinstance(saved, str) and isinstance(version, int):
            return saved_body(saved, version)
        return None

    @classmethod
    def check(cls, params: Mapping[str, Any], context: CheckContext) -> Iterable[Issue]:
        named = [key for key in ("graph", "workflow") if key in params]
        if len(named) != 1:
            yield Issue(
                "invalid_params",
                "name the body with `graph` (a subgraph of this document) or `workflow` "
                "(a saved workflow), one of them",
                path="",
            )
        elif "version" in params and "workflow" not in params:
            yield Issue("invalid_params", "`version` goes with `workflow`", path="/version")

    @classmethod
    def body_ports(
        cls, params: Mapping[str, Any], body: Body
    ) -> tuple[tuple[Port, ...], tuple[Port, ...]]:
        """The node's input and output ports for its body (default: the body's own)."""
        return body.inputs, body.outputs

    @classmethod
    def check_body(cls, params: Mapping[str, Any], body: Body) -> Iterable[Issue]:
        """Checks of the params against the body (paths relative to the params)."""
        return ()

    def instance_path(self, node_id: str, index: int) -> str:
        """The path prefix of instance ``index``'s nodes (``m[3]/``)."""
        return f"{node_id}{self.path_format.format(index)}/"

    def concurrency(self) -> int:
        """How many instances may run at once."""
        return 1

    def instances(self, inputs: dict[str, Any], body: Body) -> list[dict[str, Any]]:
        """The body inputs of the instances that can start now, in order; `NodeFailure` for
        inputs the body cannot run on (items that are not an array, say)."""
        raise NotImplementedError

    def following(self, inputs: dict[str, Any], last: Outcome) -> dict[str, Any] | None:
        """For sequential bodies: the body inputs of the instance after ``last``, or None when
        there is none."""
        return None

    def stops_on_failure(self) -> bool:
        """Whether an instance's failure stops the node from starting more of them."""
        return True

    def answer(self, inputs: dict[str, Any], outcomes: list[Outcome], body: Body) -> dict[str, Any]:
        """The node's outputs from every instance's outcome, in order; `NodeFailure` when the
        node fails for them."""
        raise NotImplementedError

    async def run(self, inputs: dict[str, Any], context: NodeContext) -> dict[str, Any]:
        raise NotImplementedError(f"{self.type} nodes are run by the engine, body and all")

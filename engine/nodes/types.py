"""The node API: what a node type declares (ports, params schema, version) and how it runs."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import msgspec

from engine.documents.issues import Issue
from engine.errors import AnswerInvalid
from engine.execution.reasons import Reason

if TYPE_CHECKING:
    from engine.models import ModelService

__all__ = [
    "PORT_TYPES",
    "CheckContext",
    "NodeContext",
    "NodeType",
    "Port",
    "PortType",
    "Role",
    "compatible",
    "json_schema_port_type",
]

PortType = Literal["string", "number", "integer", "boolean", "object", "array", "any"]
PORT_TYPES: tuple[PortType, ...] = (
    "string",
    "number",
    "integer",
    "boolean",
    "object",
    "array",
    "any",
)

_NO_DEFAULT: Any = msgspec.UNSET


class Port(msgspec.Struct, frozen=True, omit_defaults=True):
    """A typed input or output. ``many`` inputs accept several edges and receive a list."""

    name: str
    type: PortType = "any"
    many: bool = False
    required: bool = True
    default: Any = _NO_DEFAULT
    description: str = ""
    # A required input that may go unconnected when this other input is connected instead.
    alternative: str = ""

    @property
    def has_default(self) -> bool:
        return self.default is not msgspec.UNSET


def compatible(source: PortType, target: PortType) -> bool:
    """Whether an edge from a ``source``-typed output may feed a ``target``-typed input."""
    return (
        source == target
        or "any" in (source, target)
        or (source == "integer" and target == "number")
    )


def json_schema_port_type(schema: Mapping[str, Any]) -> PortType:
    """The port type matching a JSON Schema's ``type`` (``any`` when absent or a union)."""
    declared = schema.get("type")
    return declared if isinstance(declared, str) and declared in PORT_TYPES else "any"


class NodeContext:
    """What a running node may use besides its inputs: identity, token streaming, the workspace,
    the models (None when the engine runs without them), whose run it is."""

    __slots__ = (
        "attempt",
        "emit_token",
        "models",
        "node_id",
        "owner_id",
        "reason",
        "run_id",
        "run_inputs",
        "usage",
        "workspace",
    )

    def __init__(
        self,
        *,
        run_id: str,
        node_id: str,
        attempt: int,
        run_inputs: Mapping[str, Any],
        emit_token: Callable[[str], None],
        workspace: Path,
        models: ModelService | None = None,
        owner_id: str | None = None,
    ) -> None:
        self.run_id = run_id
        self.node_id = node_id
        self.attempt = attempt
        self.run_inputs = run_inputs
        self.emit_token = emit_token
        self.workspace = workspace
        self.models = models
        # Whose run it is (None without accounts): what a node may see of stored objects.
        self.owner_id = owner_id
        # Token usage a node reports (``prompt_tokens``, ``completion_tokens``); stored with it.
        # ``prompt_tokens``, ``completion_tokens``, and ``model`` (the model that answered) and
        # ``cost`` where known.
        self.usage: dict[str, Any] | None = None
        # Why the node executed as it did, when it says more than the engine's reason (a
        # fallback model answered); replaces that reason once the node succeeds.
        self.reason: Reason | None = None

    @property
    def idempotency_key(self) -> str:
        """``run:node:attempt``: what side-effecting work should pass on to deduplicate."""
        return f"{self.run_id}:{self.node_id}:{self.attempt}"


class CheckContext(msgspec.Struct, frozen=True):
    """What validation knows besides the document: model names, the workspace folder."""

    models: frozenset[str] | None = None
    workspace: Path | None = None
    # Whether tool names are checked against this process's tools. A worker compiling a run
    # the server validated does not: a tool it lacks fails the node that calls it.
    tools_checked: bool = True


Role = Literal["input", "output"] | None


class NodeType:
    """Base class of node types. Subclasses set the class attributes and implement `run`.

    An instance is made per node of a run with that node's params (common params removed), so
    `__init__` is the place to compile templates and the like once.
    """

    type: ClassVar[str]
    title: ClassVar[str]
    category: ClassVar[str] = "general"
    description: ClassVar[str] = ""
    version: ClassVar[int] = 1
    params_schema: ClassVar[dict[str, Any]] = {"type": "object", "properties": {}}
    inputs: ClassVar[tuple[Port, ...]] = ()
    outputs: ClassVar[tuple[Port, ...]] = ()
    # Whether a node's result depends on more than its params and inputs (see `fingerprint`).
    reads_outside_world: ClassVar[bool] = False
    # Whether a node talks to a model or the outside world (a model, a tool, an MCP server):
    # its committed output is the record of that call, which a replay takes instead of calling
    # again (SPEC §17).
    recordable: ClassVar[bool] = False
    # ``input`` nodes take the run's inputs and ``output`` nodes make its outputs, by ``name``.
    role: ClassVar[Role] = None
    # Whether `input_ports` / `output_ports` depend on the params (a template's variables, say).
    dynamic_ports: ClassVar[bool] = False

    def __init__(self, params: Mapping[str, Any]) -> None:
        self.params = params

    @classmethod
    def input_ports(cls, params: Mapping[str, Any]) -> tuple[Port, ...]:
        """The input ports for these params (override when ports depend on params)."""
        return cls.inputs

    @classmethod
    def output_ports(cls, params: Mapping[str, Any]) -> tuple[Port, ...]:
        return cls.outputs

    @classmethod
    def answered(
        cls, params: Mapping[str, Any], answer: Any, inputs: Mapping[str, Any]
    ) -> dict[str, Any]:
        """The outputs of a node of this type that waited (its ``run`` raised `NodeWaits`) once
        a person gives ``answer``; `AnswerInvalid` when the answer does not fit."""
        raise AnswerInvalid(f"a {cls.type} node takes no answers")

    @classmethod
    def check(cls, params: Mapping[str, Any], context: CheckContext) -> Iterable[Issue]:
        """Checks beyond the params JSON Schema; `Issue` paths are relative to the params."""
        return ()

    async def fingerprint(self, inputs: Mapping[str, Any], context: NodeContext) -> str | None:
        """A digest of what the node reads from outside (files, say), part of its cache key."""
        return None

    async def run(self, inputs: dict[str, Any], context: NodeContext) -> dict[str, Any]:
        """Compute the outputs. An output port left out of the result is skipped downstream."""
        raise NotImplementedError

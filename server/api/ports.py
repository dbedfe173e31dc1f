"""``POST /api/node-types/ports``: the ports of nodes whose ports depend on their params (a
template's variables, an `llm`'s `json` output), so an editor can draw them as they are."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, post
from litestar.params import JSONBody

from engine.documents.document import Subgraph, Workflow
from engine.documents.graph import body_node_ports
from engine.nodes.body import BodyNode
from engine.nodes.types import Port
from server.api.deps import EngineDep
from server.problems import documented

MAX_NODES = 5000


class NodeParams(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    type: str
    params: dict[str, Any] = {}


class PortsRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    nodes: dict[str, NodeParams]
    # The document's bodies: the ports of `subgraph`, `map` and `loop` nodes are their body's.
    subgraphs: dict[str, Subgraph] = {}


class NodePorts(msgspec.Struct, kw_only=True):
    inputs: list[Port]
    outputs: list[Port]


class PortsAnswer(msgspec.Struct, kw_only=True):
    # Nodes of unknown types, or whose params do not yet yield ports, are left out.
    nodes: dict[str, NodePorts]


class PortsController(Controller):
    path = "/api/node-types/ports"
    tags = ["catalogue"]  # noqa: RUF012

    @post(
        "/",
        status_code=200,
        summary="The ports of nodes with these params (for editors)",
        responses=documented(),
    )
    async def ports(self, engine: EngineDep, data: JSONBody[PortsRequest]) -> PortsAnswer:
        answer: dict[str, NodePorts] = {}
        document = Workflow(schema_version=1, name="", nodes=[], subgraphs=data.subgraphs)
        for node_id, node in list(data.nodes.items())[:MAX_NODES]:
            node_type = engine.registry.get(node.type)
            if node_type is None:
                continue
            try:
                if issubclass(node_type, BodyNode):
                    found = body_node_ports(document, node_type, node.params, engine.registry)
                    if found is None:
                        continue
                    inputs, outputs = found
                else:
                    inputs = node_type.input_ports(node.params)
                    outputs = node_type.output_ports(node.params)
            except Exception:  # noqa: BLE001, S112 - params that yield no ports yet (a bad template)
                continue
            answer[node_id] = NodePorts(inputs=list(inputs), outputs=list(outputs))
        return PortsAnswer(nodes=answer)

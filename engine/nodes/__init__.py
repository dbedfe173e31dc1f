"""The node interface: what a node type declares and gets (`NodeType`, `Port`, `NodeContext`,
`CheckContext`), the common params every node takes, and the `NodeRegistry` an engine is given.
Node packages import this; the engine never imports them."""

from engine.nodes.registry import (
    COMMON_PARAMS,
    ENTRY_POINT_GROUP,
    ID_PATTERN,
    NodeRegistry,
    NodeSettings,
    split_params,
)
from engine.nodes.types import (
    PORT_TYPES,
    CheckContext,
    NodeContext,
    NodeType,
    Port,
    PortType,
    Role,
    compatible,
    json_schema_port_type,
)

__all__ = [
    "COMMON_PARAMS",
    "ENTRY_POINT_GROUP",
    "ID_PATTERN",
    "PORT_TYPES",
    "CheckContext",
    "NodeContext",
    "NodeRegistry",
    "NodeSettings",
    "NodeType",
    "Port",
    "PortType",
    "Role",
    "compatible",
    "json_schema_port_type",
    "split_params",
]

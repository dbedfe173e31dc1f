"""“Group into subgraph” (the canvas's): the chosen nodes move into a body run by one
`subgraph` node, and the document still validates and runs to the same outputs."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from engine.documents.document import from_builtins
from engine.runs.service import RunService
from tests.support.documents import ROOT
from ui.grouping import GroupRefused, group_into_subgraph


def example(name: str) -> dict[str, Any]:
    return dict(json.loads((ROOT / "workflows" / name).read_text()))


@pytest.mark.parametrize(
    "chosen",
    [
        {"identity", "era", "work", "merge"},  # a fan-in, with an output used twice outside
        {"merge"},  # a `many` port fed from three sources
        {"identity", "era"},  # two side by side
    ],
)
async def test_grouped_nodes_run_as_before(service: RunService, chosen: set[str]) -> None:
    document = example("profile.json")
    grouped = copy.deepcopy(document)
    grouped.setdefault("subgraphs", {})
    node_id = group_into_subgraph(grouped, grouped["subgraphs"], chosen)
    assert node_id == "group"
    assert {node["id"] for node in grouped["nodes"]} == (
        {node["id"] for node in document["nodes"]} - chosen | {"group"}
    )
    body = grouped["subgraphs"]["group"]
    assert chosen <= {node["id"] for node in body["nodes"]}
    before = await service.execute(from_builtins(document))
    after = await service.execute(from_builtins(grouped))
    assert after.status == "succeeded", after.error
    assert after.outputs == before.outputs


def test_nothing_chosen_changes_nothing() -> None:
    document = example("greeting.json")
    assert group_into_subgraph(document, {}, set()) is None
    assert document == example("greeting.json")


def test_a_selection_with_nodes_between_its_own_is_refused() -> None:
    document = example("profile.json")
    with pytest.raises(GroupRefused, match="without merge, which lie between them"):
        group_into_subgraph(document, {}, {"era", "summarise"})
    with pytest.raises(GroupRefused, match="name: inputs and outputs stay where they are"):
        group_into_subgraph(document, {}, {"name", "identity"})
    assert document == example("profile.json")

"""What a run service keeps in memory between runs: compiled plans of the documents it ran, and
finished runs (row, plan, node states), so the editor's run, tweak, rerun loop neither compiles
nor reads them again."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar

from engine.documents.document import Workflow
from engine.documents.plan import Plan
from engine.execution.results import NodeState
from engine.storage.tables import RunRow

__all__ = [
    "FREE_AFTER_S",
    "RECENT_PLANS",
    "RECENT_RUNS",
    "STORED_PLAN_KEYS",
    "Recent",
    "RecentRun",
]

RECENT_RUNS = 8  # finished runs whose plan and results stay in memory for quick reruns
RECENT_PLANS = 64  # documents whose compiled plan (and stored form) is kept
STORED_PLAN_KEYS = 4096  # keys of compiled plans known to be stored
# Freeing a run dropped from memory takes about as long as a rerun of it (thousands of objects):
# it is done this long after, not while the run that pushed it out is ending.
FREE_AFTER_S = 0.5
T = TypeVar("T")


class RecentRun(NamedTuple):
    row: RunRow  # as stored when the run finished (finished runs do not change)
    plan: Plan
    states: dict[str, NodeState]  # what a rerun may take over


class Recent:
    """The `RECENT_RUNS` finished runs and `RECENT_PLANS` plans used last, least recently used
    dropped."""

    def __init__(self) -> None:
        self._runs: OrderedDict[str, RecentRun] = OrderedDict()
        self._plans: OrderedDict[int, tuple[Workflow, Plan]] = OrderedDict()
        self._blobs: OrderedDict[int, tuple[Workflow, dict[str, Any]]] = OrderedDict()
        self._dropped: list[RecentRun] = []  # to be freed
        self._plan_keys: OrderedDict[str, None] = OrderedDict()  # of plans stored
        # The plans of stored documents, by `plan_key`: a rerun of a run no longer kept here
        # reads neither its document nor its plan when the plan is.
        self._stored: OrderedDict[str, Plan] = OrderedDict()
        self._freeing: asyncio.TimerHandle | None = None

    def plan(self, workflow: Workflow, compile_plan: Callable[[Workflow], Plan]) -> Plan:
        """The plan of ``workflow``; the same document object (the API's cached current version
        of a workflow, say) is compiled once. Documents are never changed in place."""
        return _made_once(self._plans, workflow, compile_plan)

    def blob(
        self, workflow: Workflow, make: Callable[[Workflow], dict[str, Any]]
    ) -> dict[str, Any]:
        """The blob row storing ``workflow``, made once per document object like its plan."""
        return _made_once(self._blobs, workflow, make)

    def stored_plan(self, key: str) -> Plan | None:
        """The plan of the stored document whose plan key is ``key``, when kept here."""
        found = self._stored.get(key)
        if found is not None:
            self._stored.move_to_end(key)
        return found

    def keep_stored_plan(self, key: str, plan: Plan) -> None:
        """Keep the plan of a stored document (its plan key ``key``), for `RECENT_PLANS`
        documents."""
        self._stored[key] = plan
        self._stored.move_to_end(key)
        while len(self._stored) > RECENT_PLANS:
            self._stored.popitem(last=False)

    def stored_plan_keys(self) -> frozenset[str]:
        return frozenset(self._stored)

    def new_plan_key(self, key: str) -> bool:
        """Whether the plan stored under ``key`` is not known to be stored (now it is)."""
        if key in self._plan_keys:
            self._plan_keys.move_to_end(key)
            return False
        self._plan_keys[key] = None
        while len(self._plan_keys) > STORED_PLAN_KEYS:
            self._plan_keys.popitem(last=False)
        return True

    def forget_plan_key(self, key: str) -> None:
        self._plan_keys.pop(key, None)

    def run(self, run_id: str) -> RecentRun | None:
        """A run kept here (now the most recently used), or None."""
        found = self._runs.get(run_id)
        if found is not None:
            self._runs.move_to_end(run_id)
        return found

    def finished(self, row: RunRow, plan: Plan, states: dict[str, NodeState]) -> None:
        """Keep a run that finished here (not one that was interrupted: it goes on later)."""
        self._runs[row.id] = RecentRun(row, plan, states)
        while len(self._runs) > RECENT_RUNS:
            self._dropped.append(self._runs.popitem(last=False)[1])
        if self._dropped and self._freeing is None:
            self._freeing = asyncio.get_running_loop().call_later(FREE_AFTER_S, self._free)

    def _free(self) -> None:
        self._dropped.clear()
        self._freeing = None


def _made_once(
    cache: OrderedDict[int, tuple[Workflow, T]], workflow: Workflow, make: Callable[[Workflow], T]
) -> T:
    """What ``make`` makes of ``workflow``, kept for the `RECENT_PLANS` last documents."""
    cached = cache.get(id(workflow))
    if cached is not None and cached[0] is workflow:
        cache.move_to_end(id(workflow))
        return cached[1]
    made = make(workflow)
    cache[id(workflow)] = (workflow, made)
    while len(cache) > RECENT_PLANS:
        cache.popitem(last=False)
    return made

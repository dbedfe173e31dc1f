"""Evaluations driven by this server (SPEC §17): everything is checked before anything runs
(the workflow's versions, the variants' params, the evaluators' outputs, every row's inputs),
then the evaluation runs in a task of its own, its report stored after every row."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import msgspec
import structlog

from engine.documents.document import Workflow, from_builtins
from engine.errors import Conflict, InputsInvalid, NodeloomError, describe
from engine.evals.datasets import Row, check_rows
from engine.evals.evaluators import Evaluator, check_evaluators
from engine.evals.runner import Evaluation, Variant, Variants, documents, summary
from engine.runs.processes import process_alive
from engine.runs.service import RunService
from engine.storage.batches import stale
from engine.storage.evaluations import EvaluationStore, StoredEvaluation

__all__ = ["EvaluationRequest", "Evaluations"]

log = structlog.get_logger("nodeloom.evaluations")


class EvaluationRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    workflow_id: str
    dataset_id: str
    variants: list[Variant]
    evaluators: list[Evaluator]


class Evaluations:
    def __init__(
        self, runs: RunService, store: EvaluationStore, *, lease_timeout_s: float = 30.0
    ) -> None:
        self.runs = runs
        self.store = store
        self.lease_timeout_s = lease_timeout_s
        self._beating: asyncio.Task[None] | None = None
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._cancelled: set[str] = set()  # evaluations stopped for good, not interrupted

    async def start(self, request: EvaluationRequest, *, owner_id: str | None) -> StoredEvaluation:
        """Check the evaluation whole (`InputsInvalid`, `WorkflowInvalid`, `NotFound` naming the
        place), store it and start it."""
        variants, pairs = await self._prepare(request, owner_id)
        stored = await self.store.create_evaluation(
            msgspec.to_builtins(request), summary(variants, pairs, [None] * len(pairs)),
            owner_id=owner_id, driver=self.runs.process,
        )  # fmt: skip
        self._launch(stored.id, request, variants, pairs, owner_id=owner_id, done={})
        return stored

    async def open(self, *, take_over: bool = True) -> list[str]:
        """Go on with the evaluations whose server stopped (left interrupted, or running with
        a driver that died or went silent), each taken by one server: the rows they had scored
        stand, the others run. Now and then after, the same again, and this server's
        heartbeat. Returns the ids taken now. Without ``take_over`` (`nodeloom eval`), only the
        heartbeat of those it runs."""
        taken = await self._take_over() if take_over else []
        if self._beating is None:
            self._beating = asyncio.create_task(self._beat(take_over))
        return taken

    async def _beat(self, take_over: bool) -> None:
        while True:
            await asyncio.sleep(max(self.lease_timeout_s / 3, 0.05))
            try:
                if self._tasks:
                    await self.store.heartbeat(list(self._tasks), self.runs.process)
                taken = await self._take_over() if take_over else []
                if taken:
                    log.warning("evaluations taken over", evaluations=taken)
            except Exception:
                log.exception("evaluation heartbeat failed")

    async def _take_over(self) -> list[str]:
        taken = []
        for stored in await self.store.unfinished():
            if stored.id in self._tasks or (
                stored.status == "running"
                and process_alive(stored.driver)
                and not stale(stored.heartbeat_at, self.lease_timeout_s)
            ):
                continue
            if not await self.store.take_over(stored, self.runs.process):
                continue
            request = msgspec.convert(stored.spec, EvaluationRequest)
            try:
                variants, pairs = await self._prepare(request, stored.owner_id)
            except NodeloomError as exc:  # the workflow or dataset changed meanwhile
                report = {**stored.report, "error": f"cannot go on: {exc.detail}"}
                await self.store.update(stored.id, report, status="failed")
                continue
            done = {row["index"]: row["variants"] for row in stored.report.get("rows", [])}
            self._launch(stored.id, request, variants, pairs, owner_id=stored.owner_id, done=done)
            taken.append(stored.id)
        return taken

    async def cancel(self, evaluation_id: str, *, owner_id: str | None) -> StoredEvaluation:
        """Stop an evaluation: no more rows run; it is stored `cancelled`."""
        stored = await self.store.evaluation(evaluation_id, owner_id=owner_id)
        task = self._tasks.get(evaluation_id)
        if task is not None:
            self._cancelled.add(evaluation_id)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        elif stored.status in ("running", "interrupted"):
            if stored.status == "running":
                raise Conflict(f"evaluation {evaluation_id} is running on another server")
            await self.store.update(evaluation_id, stored.report, status="cancelled")
        return await self.store.evaluation(evaluation_id, owner_id=owner_id)

    def _launch(
        self,
        evaluation_id: str,
        request: EvaluationRequest,
        variants: Variants,
        pairs: list[tuple[dict[str, Any], dict[str, Any]]],
        *,
        owner_id: str | None,
        done: dict[int, Any],
    ) -> None:
        evaluation = Evaluation(
            self.runs,
            request.workflow_id,
            variants,
            request.evaluators,
            owner_id,
            trigger=f"evaluation:{evaluation_id}",
        )
        self._tasks[evaluation_id] = asyncio.create_task(
            self._drive(evaluation_id, evaluation, pairs, done)
        )

    async def _prepare(
        self, request: EvaluationRequest, owner_id: str | None
    ) -> tuple[Variants, list[tuple[dict[str, Any], dict[str, Any]]]]:
        names = [variant.name for variant in request.variants]
        if not names:
            raise InputsInvalid("variants: at least one variant is needed")
        if len(set(names)) != len(names):
            raise InputsInvalid(f"variants: names must differ, got {', '.join(names)}")
        store = self.runs.store
        current = await store.get_workflow(request.workflow_id, owner_id=owner_id)
        versions: dict[int, Workflow] = {current.version: from_builtins(current.document)}
        for variant in request.variants:
            if variant.version is not None and variant.version not in versions:
                found = await store.get_workflow(
                    request.workflow_id, variant.version, owner_id=owner_id
                )
                versions[variant.version] = from_builtins(found.document)
        variants = documents(request.variants, versions, self.runs.registry)
        plan = self.runs.plan(variants[0][1])
        outputs = {node.params["name"] for node in plan.by_role("output")}
        models = self.runs.models
        check_evaluators(request.evaluators, outputs, models.names if models else None)
        dataset = await self.store.dataset(request.dataset_id, owner_id=owner_id)
        rows = msgspec.convert(dataset.rows, list[Row])
        inputs = check_rows(plan, rows)
        pairs = [(given, row.expected) for given, row in zip(inputs, rows, strict=True)]
        return variants, pairs

    async def _drive(
        self,
        evaluation_id: str,
        evaluation: Evaluation,
        rows: list[tuple[dict[str, Any], Any]],
        done: dict[int, Any],
    ) -> None:
        async def report(now: dict[str, Any]) -> None:
            await self.store.update(evaluation_id, now)

        try:
            final = await evaluation.run(rows, report, done)
            await self.store.update(evaluation_id, final, status="done")
        except asyncio.CancelledError:
            ended = "cancelled" if evaluation_id in self._cancelled else "interrupted"
            with contextlib.suppress(Exception):
                stored = await self.store.evaluation(evaluation_id, owner_id=None)
                await self.store.update(evaluation_id, stored.report, status=ended)
            raise
        except Exception as exc:
            log.exception("evaluation failed", evaluation_id=evaluation_id)
            stored = await self.store.evaluation(evaluation_id, owner_id=None)
            await self.store.update(
                evaluation_id, {**stored.report, "error": describe(exc)}, status="failed"
            )
        finally:
            self._tasks.pop(evaluation_id, None)
            self._cancelled.discard(evaluation_id)

    async def wait(self, evaluation_id: str) -> None:
        task = self._tasks.get(evaluation_id)
        if task is not None:
            await asyncio.shield(task)

    async def close(self) -> None:
        """Stop the evaluations running here; each is stored `interrupted`."""
        if self._beating is not None:
            self._beating.cancel()
            await asyncio.gather(self._beating, return_exceptions=True)
            self._beating = None
        for task in list(self._tasks.values()):
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)

"""Running an evaluation (SPEC §17): every row of a dataset through each variant of a workflow,
each output scored. A row's first variant is a run of its own; every later variant is a rerun
of that run with the variant's document, so what the variant does not change is reused. The
report (per variant: pass rate, mean score, tokens, latency, nodes executed and reused; per row:
each variant's run, outputs and scores) is handed on after every row."""

from __future__ import annotations

import asyncio
import statistics
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import msgspec

from engine.documents.document import Workflow
from engine.evals.evaluators import Evaluator, Score, judge, score
from engine.records import RunRecord
from engine.runs.reruns import override
from engine.runs.service import RunService
from engine.runs.usage import node_tokens, total_usage

__all__ = ["Evaluation", "Variant", "Variants", "documents", "summary"]

PARALLEL_ROWS = 4


class Variant(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A version of the workflow (its current one by default) with param overrides."""

    name: str
    params: dict[str, dict[str, Any]] = {}
    version: int | None = None


# Each variant with the document it runs (its version, its params applied) and that version.
Variants = list[tuple[Variant, Workflow, int]]
Report = Callable[[dict[str, Any]], Awaitable[None]]


def documents(variants: list[Variant], versions: Mapping[int, Workflow], registry: Any) -> Variants:
    """Each variant's document: the version's with the variant's params (`WorkflowInvalid`
    naming a param that does not exist)."""
    return [
        (
            variant,
            override(versions[version], "", None, variant.params, registry),
            version,
        )
        for variant in variants
        for version in [variant.version if variant.version is not None else max(versions)]
    ]


@dataclass(frozen=True)
class Evaluation:
    """One evaluation of a saved workflow: its variants and evaluators, run as ``owner_id``."""

    service: RunService
    workflow_id: str
    variants: Variants
    evaluators: list[Evaluator]
    owner_id: str | None
    trigger: str

    async def run(
        self,
        rows: list[tuple[dict[str, Any], dict[str, Any]]],
        report: Report,
        done: Mapping[int, dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """Every row, (inputs, expected), a few at a time; ``report`` after each. Rows ``done``
        before (by index, their results: an evaluation resumed) are not run again. Returns the
        final report."""
        results: list[dict[str, Any] | None] = [(done or {}).get(i) for i in range(len(rows))]
        lock = asyncio.Lock()
        limit = asyncio.Semaphore(PARALLEL_ROWS)

        async def one(index: int, inputs: dict[str, Any], expected: dict[str, Any]) -> None:
            async with limit:
                results[index] = await self._row(inputs, expected)
            async with lock:
                await report(summary(self.variants, rows, results))

        await asyncio.gather(
            *(
                one(i, inputs, wanted)
                for i, (inputs, wanted) in enumerate(rows)
                if results[i] is None
            )
        )
        return summary(self.variants, rows, results)

    async def _row(self, inputs: dict[str, Any], expected: dict[str, Any]) -> dict[str, Any]:
        by_variant: dict[str, Any] = {}
        first: RunRecord | None = None
        for variant, document, version in self.variants:
            if first is None:
                handle = await self.service.start(
                    document,
                    inputs,
                    workflow_id=self.workflow_id,
                    workflow_version=version,
                    owner_id=self.owner_id,
                    caller_waits=True,
                    trigger=self.trigger,
                )
            else:  # what this variant does not change is taken over from the first's run
                handle = await self.service.rerun(
                    first.id,
                    owner_id=self.owner_id,
                    caller_waits=True,
                    trigger=self.trigger,
                    workflow=document,
                    version=version,
                )
            record = await handle.wait()
            first = first or record
            scores = [
                await judge(evaluator, record.outputs, expected, self.service.models)
                if evaluator.kind == "llm_judge"
                else score(evaluator, record.outputs, expected)
                for evaluator in self.evaluators
            ]
            by_variant[variant.name] = _result(record, scores)
        return by_variant


def _result(record: RunRecord, scores: list[Score]) -> dict[str, Any]:
    nodes = record.nodes.values()
    started, finished = record.started_at, record.finished_at
    return {
        "run_id": record.id,
        "status": record.status,
        "error": record.error,
        "outputs": record.outputs,
        "scores": msgspec.to_builtins(scores),
        "passed": record.status == "succeeded" and all(s.passed for s in scores),
        "score": statistics.fmean(s.score for s in scores) if scores else 0.0,
        "tokens": sum(node_tokens(n.usage) for n in nodes),
        "judge_tokens": sum(node_tokens(s.usage) for s in scores),
        "cost": total_usage(n.usage for n in nodes)["cost"],
        "latency_ms": (finished - started).total_seconds() * 1000 if started and finished else 0,
        "executed_nodes": sum(n.status in ("succeeded", "failed") for n in nodes),
        "reused_nodes": sum(n.status == "cached" for n in nodes),
    }


def summary(
    variants: Variants,
    rows: list[tuple[dict[str, Any], dict[str, Any]]],
    results: list[dict[str, Any] | None],
) -> dict[str, Any]:
    """The report as it stands: progress, per variant, per row."""
    done = [result for result in results if result is not None]
    per_variant = {}
    for variant, _, version in variants:
        mine = [result[variant.name] for result in done]
        per_variant[variant.name] = {
            "version": version,
            "params": variant.params,
            "runs": len(mine),
            "pass_rate": sum(r["passed"] for r in mine) / len(mine) if mine else 0.0,
            "mean_score": statistics.fmean(r["score"] for r in mine) if mine else 0.0,
            "tokens": sum(r["tokens"] for r in mine),
            "judge_tokens": sum(r["judge_tokens"] for r in mine),
            "cost": sum(r.get("cost", 0.0) for r in mine),  # the runs' (judging is not priced)
            "latency_p50_ms": statistics.median(r["latency_ms"] for r in mine) if mine else 0.0,
            "executed_nodes": sum(r["executed_nodes"] for r in mine),
            "reused_nodes": sum(r["reused_nodes"] for r in mine),
        }
    return {
        "progress": {"done": len(done), "total": len(rows)},
        "variants": per_variant,
        "rows": [
            {"index": index, "inputs": inputs, "expected": expected, "variants": result}
            for index, ((inputs, expected), result) in enumerate(zip(rows, results, strict=True))
            if result is not None
        ],
    }

"""Evaluations (SPEC §17): a second variant that changes only the template after an `llm` node
costs next to nothing, because it reruns the first variant's runs and takes over the model's
answers.

    .venv/bin/python bench/evals.py            # 100 rows x 2 variants, the embedded model
    .venv/bin/python bench/evals.py --rows 20  # fewer rows

In this process, on SQLite: a saved workflow input -> template -> llm (Gemma 3 270M, 8 tokens)
-> template -> output, a dataset of questions, and an evaluation with the variants `current` and
`shout` (the last template upper-cases). Each variant's wall time is the sum of its runs'
(the rows run four at a time; each row runs `current` then `shout`). Target: `shout` calls the
model 0 times and costs <= 5% of `current`'s time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.documents.document import from_builtins  # noqa: E402
from engine.evals.evaluators import Evaluator  # noqa: E402
from engine.evals.runner import Variant  # noqa: E402
from engine.models import ModelService  # noqa: E402
from engine.runs.service import RunService  # noqa: E402
from engine.storage.database import Database  # noqa: E402
from engine.storage.evaluations import EvaluationStore  # noqa: E402
from server.evaluations import EvaluationRequest, Evaluations  # noqa: E402
from server.plugins import installed_registry  # noqa: E402

TARGET_SHARE = 0.05
WORKFLOW: dict[str, Any] = {
    "schema_version": 1,
    "name": "Answering",
    "nodes": [
        {"id": "q", "type": "input", "params": {"name": "q", "schema": {"type": "string"}}},
        {"id": "ask", "type": "template", "params": {"template": "Q: {{ q }}\nA:"}},
        {"id": "answer", "type": "llm",
         "params": {"model": "gemma-3-270m", "max_tokens": 8, "temperature": 0, "seed": 1}},
        {"id": "tidy", "type": "template", "params": {"template": "{{ text | trim }}"}},
        {"id": "out", "type": "output", "params": {"name": "answer"}},
    ],
    "edges": [
        {"from": "q.value", "to": "ask.q"},
        {"from": "ask.text", "to": "answer.prompt"},
        {"from": "answer.text", "to": "tidy.text"},
        {"from": "tidy.text", "to": "out.value"},
    ],
}  # fmt: skip


async def main_async(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="nodeloom-bench-") as tmp:
        database = await Database.connect(f"sqlite+aiosqlite:///{tmp}/evals.db")
        models = ModelService.from_env(os.environ)
        service = RunService(database, installed_registry(), models=models)
        evaluations = Evaluations(service, EvaluationStore(database))
        try:
            workflow = await service.store.create_workflow(from_builtins(WORKFLOW))
            rows = [
                {"inputs": {"q": f"what is {n} plus {n}?"}, "expected": {"answer": str(2 * n)}}
                for n in range(args.rows)
            ]
            dataset = await evaluations.store.create_dataset("sums", rows, owner_id=None)
            request = EvaluationRequest(
                workflow_id=workflow.id,
                dataset_id=dataset.id,
                variants=[
                    Variant(name="current"),
                    Variant(name="shout", params={"tidy": {"template": "{{ text | upper }}"}}),
                ],
                evaluators=[Evaluator(output="answer", kind="contains")],
            )
            began = time.perf_counter()
            stored = await evaluations.start(request, owner_id=None)
            await evaluations.wait(stored.id)
            took = time.perf_counter() - began
            report = (await evaluations.store.evaluation(stored.id, owner_id=None)).report
        finally:
            await evaluations.close()
            await service.close()
            await models.close()
            await database.close()
    spent: dict[str, float] = {"current": 0.0, "shout": 0.0}
    calls: dict[str, int] = {"current": 0, "shout": 0}
    for row in report["rows"]:
        for name, result in row["variants"].items():
            spent[name] += result["latency_ms"]
            calls[name] += int(result["tokens"] > 0)
    share = spent["shout"] / spent["current"] if spent["current"] else float("inf")
    print(f"{args.rows} rows x 2 variants in {took:.1f} s")
    for name, each in report["variants"].items():
        print(f"{name:<8} runs' time {spent[name]:9.0f} ms  model calls {calls[name]:4}  "
              f"executed {each['executed_nodes']:4}  reused {each['reused_nodes']:4}  "
              f"pass rate {each['pass_rate']:.0%}")  # fmt: skip
    print(f"shout / current  {share:.2%} of the time (target <= {TARGET_SHARE:.0%}, 0 calls)")
    met = calls["shout"] == 0 and share <= TARGET_SHARE
    print("targets met" if met else "targets missed")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100)
    return asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())

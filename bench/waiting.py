"""Runs waiting for a person (SPEC §16): what 1,000 waiting runs cost a server's memory, and how
fast an answer resumes one, against a run of the same size that waits for nothing.

    .venv/bin/python bench/waiting.py            # 1,000 waiting runs, 100 answers
    .venv/bin/python bench/waiting.py --quick    # 200 waiting runs, 30 answers

In this process, on SQLite (a file in a temporary folder): a `RunService` starts runs of
input -> human_input -> output, each ending `waiting`; the resident memory (RSS) after they all
wait, against before, is what they hold. Then answers one at a time, each timed from the call
to the run's end (the answer checked, the run claimed, the answered node committed, the output
node run, the end committed): the median, against a start-and-wait run of input -> template ->
output. Targets: memory <= 50 MB for 1,000 waiting runs; an answer <= 20 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.documents.document import from_builtins  # noqa: E402
from engine.runs.service import RunService  # noqa: E402
from engine.storage.database import Database  # noqa: E402
from server.plugins import installed_registry  # noqa: E402

TARGET_MB = 50.0
TARGET_ANSWER_MS = 20.0


def workflow(middle: dict[str, Any], port_in: str, port_out: str) -> Any:
    return from_builtins(
        {
            "schema_version": 1,
            "name": "Waits",
            "nodes": [
                {"id": "who", "type": "input", "params": {"name": "who", "default": "x"}},
                {"id": "mid", **middle},
                {"id": "out", "type": "output", "params": {"name": "out"}},
            ],
            "edges": [
                {"from": "who.value", "to": f"mid.{port_in}"},
                {"from": f"mid.{port_out}", "to": "out.value"},
            ],
        }
    )


WAITING = workflow(
    {"type": "human_input", "params": {"prompt": "Approve {{ context }}?"}}, "context", "answer"
)
PLAIN = workflow({"type": "template", "params": {"template": "Hi, {{ who }}!"}}, "who", "text")


def rss_mb() -> float:
    with Path("/proc/self/status").open() as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def main_async(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="nodeloom-bench-") as tmp:
        database = await Database.connect(f"sqlite+aiosqlite:///{tmp}/waiting.db")
        service = RunService(database, installed_registry(), workspace=Path(tmp) / "ws")
        try:
            for _ in range(20):  # warm: plans compiled, connections made
                await (await service.start(PLAIN, {"who": "warm"}, caller_waits=True)).wait()
            gc.collect()
            before = rss_mb()
            started = time.perf_counter()
            waiting = []
            for number in range(args.runs):
                record = await (await service.start(WAITING, {"who": f"n{number}"})).wait()
                assert record.status == "waiting", record.error
                waiting.append(record.id)
            took = time.perf_counter() - started
            gc.collect()
            grown = rss_mb() - before
            print(f"{args.runs} runs waiting: started in {took:.2f} s, {len(service.active)} "
                  f"executing, memory +{grown:.1f} MB (target <= {TARGET_MB:g} MB for 1,000)")

            answers, plain = [], []
            for run_id in waiting[: args.answers]:
                begun = time.perf_counter()
                record = await (await service.answer(run_id, "mid", "yes")).wait()
                answers.append(time.perf_counter() - begun)
                assert record.status == "succeeded", record.error
                begun = time.perf_counter()
                await (await service.start(PLAIN, {"who": run_id}, caller_waits=True)).wait()
                plain.append(time.perf_counter() - begun)
        finally:
            await service.close()
            await database.close()
    answer_ms = statistics.median(answers) * 1000
    plain_ms = statistics.median(plain) * 1000
    print(f"an answer resuming a run   {answer_ms:7.2f} ms median of {len(answers)} "
          f"(target <= {TARGET_ANSWER_MS:g} ms)")
    print(f"a run waiting for nothing  {plain_ms:7.2f} ms median (baseline)")
    print(f"answer / baseline          {answer_ms / plain_ms:7.2f}x")
    scale = 1000 / args.runs
    met = grown * scale <= TARGET_MB and answer_ms <= TARGET_ANSWER_MS
    print("targets met" if met else "targets missed")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--answers", type=int, default=100)
    parser.add_argument("--quick", action="store_true", help="200 runs, 30 answers")
    args = parser.parse_args()
    if args.quick:
        args.runs, args.answers = 200, 30
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())

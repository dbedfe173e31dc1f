"""What the `llm` node costs on top of llama-cpp-python, with the embedded model.

    .venv/bin/python bench/llm_overhead.py            # 5 rounds of 128 tokens
    .venv/bin/python bench/llm_overhead.py --quick    # 2 rounds of 32 tokens

The same prompt, model file, threads and sampling settings go (a) straight to llama-cpp-python
(`Llama.create_completion(stream=True)` on a model loaded by hand) and (b) through a one-node
workflow (input → llm → output) run by the run service with storage on (SQLite), timed from the
call to the first `node.token` event and to the end of the run. Rounds alternate (a) and (b) in
the same process; each side is warmed up first. Prints tokens/s, time to first token and the
ratios. Run it on a quiet machine: llama.cpp spin-waits on every core.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.documents.document import from_builtins
from engine.execution.events import AnyEvent, NodeToken
from engine.models import DEFAULT_MODEL, ModelRegistry, ModelService, embedded
from engine.models.llama import MIN_P, REPEAT_PENALTY, TOP_K
from engine.models.memory import default_threads
from engine.nodes.registry import NodeRegistry
from engine.runs.service import RunService
from engine.storage.database import Database
from nodes import builtin_node_types

ROOT = Path(__file__).resolve().parent.parent
PROMPT = "The history of the printing press began"


def raw_round(llm: Any, max_tokens: int) -> tuple[int, float, float]:
    """(tokens, seconds to the first token, seconds in all) straight through llama-cpp-python."""
    llm.reset()  # evaluate the whole prompt, as the node does
    started = time.perf_counter()
    first = None
    tokens = 0
    for chunk in llm.create_completion(
        PROMPT,
        max_tokens=max_tokens,
        temperature=0.0,
        top_k=TOP_K,
        min_p=MIN_P,
        repeat_penalty=REPEAT_PENALTY,
        seed=7,
        stream=True,
    ):
        choice = chunk["choices"][0]
        if first is None and choice["text"]:
            first = time.perf_counter() - started
        if choice["finish_reason"] is None:
            tokens += 1  # the closing chunk carries no token
    return tokens, first or 0.0, time.perf_counter() - started


async def node_round(service: RunService, max_tokens: int) -> tuple[int, float, float]:
    """The same through a one-node workflow run by the run service."""
    document = from_builtins(
        {
            "schema_version": 1,
            "name": "llm overhead",
            "nodes": [
                {"id": "ask", "type": "input", "params": {"name": "ask", "default": PROMPT}},
                {
                    "id": "write",
                    "type": "llm",
                    "params": {
                        "model": DEFAULT_MODEL,
                        "temperature": 0,
                        "max_tokens": max_tokens,
                        "seed": 7,
                        "cache": "never",
                    },
                },
                {"id": "out", "type": "output", "params": {"name": "text"}},
            ],
            "edges": [
                {"from": "ask.value", "to": "write.prompt"},
                {"from": "write.text", "to": "out.value"},
            ],
        }
    )
    first: list[float] = []

    def listen(event: AnyEvent) -> None:
        if isinstance(event, NodeToken) and not first:
            first.append(time.perf_counter() - started)

    started = time.perf_counter()
    active = await service.start(document, listeners=[listen])
    record = await active.wait()
    total = time.perf_counter() - started
    assert record.status == "succeeded", record.error
    usage = record.nodes["write"].usage or {}
    return usage.get("completion_tokens", 0), first[0] if first else 0.0, total


async def main(rounds: int, max_tokens: int) -> None:
    path = embedded.place(ROOT / "models" / embedded.FILE_NAME)
    registry = ModelRegistry.load(ROOT / "models")
    config = registry.get(DEFAULT_MODEL)
    threads = default_threads()
    import llama_cpp  # noqa: PLC0415 - only the benchmark loads a second copy by hand

    raw = llama_cpp.Llama(
        model_path=str(path),
        n_ctx=config.n_ctx,
        n_batch=min(config.n_batch, config.n_ctx),
        n_threads=threads,
        n_threads_batch=threads,
        verbose=False,
    )
    models = ModelService(registry, budget=4 * 1024**3, threads=threads)
    with tempfile.TemporaryDirectory() as folder:
        database = await Database.connect(f"sqlite:///{folder}/bench.db")
        service = RunService(database, NodeRegistry(builtin_node_types()), models=models)
        await asyncio.to_thread(raw_round, raw, 8)  # warm-up
        await node_round(service, 8)
        figures: dict[str, list[tuple[int, float, float]]] = {"raw": [], "node": []}
        for _ in range(rounds):
            figures["raw"].append(await asyncio.to_thread(raw_round, raw, max_tokens))
            figures["node"].append(await node_round(service, max_tokens))
        await service.close()
        await database.close()
    await models.close()
    raw.close()

    print(f"model {DEFAULT_MODEL} ({path.name}), {threads} threads, {max_tokens} tokens, "
          f"{rounds} rounds, temperature 0")
    summary = {}
    for side, rows in figures.items():
        rates = [tokens / total for tokens, _, total in rows]
        firsts = [first * 1000 for _, first, _ in rows]
        summary[side] = (statistics.median(rates), statistics.median(firsts))
        print(f"  {side:5} tokens/s median {summary[side][0]:6.1f} (min {min(rates):.1f}, "
              f"max {max(rates):.1f}); first token median {summary[side][1]:6.1f} ms "
              f"(min {min(firsts):.1f}); tokens per round {sorted({t for t, _, _ in rows})}")
    ratio = summary["node"][0] / summary["raw"][0]
    delta = summary["node"][1] - summary["raw"][1]
    print(f"  node / raw tokens/s: {ratio:.3f} (target >= 0.95)")
    print(f"  node - raw first token: {delta:+.1f} ms (target <= 20 ms)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 rounds of 32 tokens")
    args = parser.parse_args()
    asyncio.run(main(2 if args.quick else 5, 32 if args.quick else 128))

"""Chat costs (SPEC §13).

    .venv/bin/python bench/chat.py            # every measurement, full size
    .venv/bin/python bench/chat.py --quick    # fewer repetitions

`history_load`: what answering the next turn of a conversation costs before the model starts,
for a conversation of 1,000 messages against one of 10 in the same database: the conversation
and the path from the message stored last up to the root read (one recursive query), made into
the model's messages, then cut to the embedded model's context as the `llm` node does (counted by
its tokenizer, the oldest dropped first; `ModelService.fit`). SQLite in a file, messages of about
60 tokens. Target: the 1,000-message turn <= 10 ms. Medians over the repetitions.

`v1_stream`: a conversation answered by `model:gemma-3-270m` through `/v1/chat/completions`
(streamed, the official `openai` client) of the app served by uvicorn on a free loopback port
(SQLite), against the same conversation through the `llm` node's `messages` input run in-process
by the same engine's run service (storage on): the same model loaded once, messages, seed,
temperature 0 and max_tokens, rounds alternating, each side warmed up first. tokens/s =
completion tokens / time from the request to the last token; first token = time from the request
to the first streamed text; each round starts after a pause of `SETTLE_S` (the run before it
stored). The client is a process of its own (as a caller's program is), told
when to ask over a pipe. Targets: /v1 tokens/s >= 95% of the node's, first token within 20 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import uvicorn  # noqa: E402

from engine.documents.document import from_builtins  # noqa: E402
from engine.execution.events import AnyEvent, NodeToken  # noqa: E402
from engine.models import ModelRegistry, ModelService  # noqa: E402
from engine.models.conversation import Message  # noqa: E402
from engine.runs.service import RunService  # noqa: E402
from engine.storage.conversations import ConversationStore  # noqa: E402
from engine.storage.database import Database  # noqa: E402
from server.app import create_app  # noqa: E402
from server.config import ServerConfig  # noqa: E402
from server.state import Engine  # noqa: E402

HISTORY_TARGET_MS = 10.0
STREAM_RATE_TARGET = 0.95  # /v1 tokens/s over the node's
STREAM_FIRST_TARGET_MS = 20.0  # /v1 first token minus the node's
SETTLE_S = 0.3  # a pause before each round
CONVERSATION = [
    {"role": "system", "content": "The assistant answers in full."},
    {"role": "user", "content": "Count from 1 to 5, separated by commas."},
    {"role": "assistant", "content": "1, 2, 3, 4, 5"},
    {"role": "user", "content": "Now count from 1 to 200, separated by commas."},
]
MODEL = "gemma-3-270m"
ANSWER_TOKENS = 256  # left for the answer, as max_tokens would
SENTENCE = "The quick brown fox jumps over the lazy dog while the cat watches. "


async def _conversation(store: ConversationStore, size: int) -> str:
    conversation = await store.create(f"model:{MODEL}")
    parent = None
    for n in range(size):
        role = "user" if n % 2 == 0 else "assistant"
        content = f"{n}: " + SENTENCE * 4
        parent = (
            await store.append(conversation.id, role=role, content=content, parent_id=parent)
        ).id
    return conversation.id


async def _turn(
    store: ConversationStore, models: ModelService, conversation_id: str
) -> tuple[float, float, int]:
    """Reading the history, and cutting it to the context: their times (ms), messages kept."""
    started = time.perf_counter()
    await store.get(conversation_id)
    said = await store.history(conversation_id, None)
    messages = tuple(Message(m.role, m.content) for m in said)  # type: ignore[arg-type]
    read = time.perf_counter()
    kept = await models.fit(MODEL, messages, ANSWER_TOKENS)
    done = time.perf_counter()
    return (read - started) * 1000, (done - started) * 1000, len(kept)


async def history_load(repeat: int) -> bool:
    """The 1,000-message turn against the 10-message one; True when the target is met."""
    models = ModelService(ModelRegistry.load(ROOT / "models"), budget=4 * 1024**3)
    reads: dict[int, list[float]] = {10: [], 1000: []}
    turns: dict[int, list[float]] = {10: [], 1000: []}
    kept: dict[int, int] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="nodeloom-bench-") as tmp:
            database = await Database.connect(f"sqlite+aiosqlite:///{tmp}/chat.db")
            try:
                store = ConversationStore(database)
                conversations = {size: await _conversation(store, size) for size in (10, 1000)}
                await _turn(store, models, conversations[10])  # the model loaded once
                for _ in range(repeat):
                    for size, conversation_id in conversations.items():
                        read_ms, turn_ms, kept[size] = await _turn(store, models, conversation_id)
                        reads[size].append(read_ms)
                        turns[size].append(turn_ms)
            finally:
                await database.close()
    finally:
        await models.close()
    read = {size: statistics.median(times) for size, times in reads.items()}
    turn = {size: statistics.median(times) for size, times in turns.items()}
    print(f"history of 10 messages      read {read[10]:6.2f} ms, read + cut {turn[10]:6.2f} ms"
          f" ({kept[10]} kept), median of {repeat}")  # fmt: skip
    print(f"history of 1,000 messages   read {read[1000]:6.2f} ms, read + cut {turn[1000]:6.2f} ms"
          f" ({kept[1000]} kept)")  # fmt: skip
    print(f"history 1,000 / 10          {turn[1000] / turn[10]:6.2f}x")
    met = turn[1000] <= HISTORY_TARGET_MS
    print(f"history target: 1,000 messages read + cut <= {HISTORY_TARGET_MS:.0f} ms: "
          f"{'met' if met else 'missed'}")  # fmt: skip
    return met


def _node_workflow(max_tokens: int) -> Any:
    schema = {"type": "array"}
    params = {"model": MODEL, "temperature": 0, "seed": 7, "max_tokens": max_tokens,
              "cache": "never"}  # fmt: skip
    return from_builtins({
        "schema_version": 1,
        "name": "chat bench",
        "nodes": [
            {"id": "messages", "type": "input",
             "params": {"name": "messages", "schema": schema, "default": CONVERSATION}},
            {"id": "answer", "type": "llm", "params": params},
            {"id": "reply", "type": "output", "params": {"name": "answer"}},
        ],
        "edges": [
            {"from": "messages.value", "to": "answer.messages"},
            {"from": "answer.text", "to": "reply.value"},
        ],
    })  # fmt: skip


async def _node_round(service: RunService, document: Any) -> tuple[int, float, float]:
    """(completion tokens, seconds to the first token, seconds to the last) in-process."""
    first: list[float] = []
    last: list[float] = []

    def listen(event: AnyEvent) -> None:
        if isinstance(event, NodeToken):
            now = time.perf_counter() - started
            if not first:
                first.append(now)
            last[:] = [now]

    started = time.perf_counter()
    active = await service.start(document, listeners=[listen])
    record = await active.wait()
    assert record.status == "succeeded", record.error
    usage = record.nodes["answer"].usage or {}
    return int(usage.get("completion_tokens", 0)), first[0], last[0]


CLIENT = """
import json, sys, time
import openai
url, model, max_tokens = sys.argv[1], sys.argv[2], int(sys.argv[3])
client = openai.OpenAI(base_url=url, api_key="unused", max_retries=0)
messages = json.loads(sys.stdin.readline())
for line in sys.stdin:
    first = last = 0.0
    tokens = 0
    size = int(line)
    started = time.perf_counter()
    stream = client.chat.completions.create(
        model=model, messages=messages, temperature=0, seed=7, max_tokens=size, stream=True,
        stream_options={"include_usage": True})
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            last = time.perf_counter() - started
            first = first or last
        if chunk.usage is not None:
            tokens = chunk.usage.completion_tokens
    print(json.dumps([tokens, first, last]), flush=True)
"""


class _Client:
    """The `openai` client in a process of its own: each `round` streams one answer."""

    def __init__(self, url: str, max_tokens: int) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", CLIENT, f"{url}/v1", f"model:{MODEL}", str(max_tokens)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(CONVERSATION) + "\n")

    async def round(self, max_tokens: int) -> tuple[int, float, float]:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write(f"{max_tokens}\n")
        self.process.stdin.flush()
        line = await asyncio.to_thread(self.process.stdout.readline)
        tokens, first, last = json.loads(line)
        return int(tokens), float(first), float(last)

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(timeout=20)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def _serving(folder: Path) -> AsyncIterator[tuple[str, Engine]]:
    """The app (API and /v1) served by uvicorn on a free loopback port in this event loop, and
    its engine: the node's baseline runs on the same engine, so one model is loaded, its
    threads shared by both sides, never by two processes at once."""
    config = ServerConfig(
        database_url=f"sqlite+aiosqlite:///{folder}/serve.db",
        workspace=folder / "ws",
        models_dir=ROOT / "models",
        model_memory_budget=4 * 1024**3,
    )
    app = create_app(config)
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False)
    )
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}", app.state.engine
    finally:
        server.should_exit = True
        await task


async def v1_stream(rounds: int, max_tokens: int) -> bool:
    """/v1 streamed against the `llm` node in-process; True when both targets are met."""
    document = _node_workflow(max_tokens)
    figures: dict[str, list[tuple[int, float, float]]] = {"node": [], "v1": []}
    with tempfile.TemporaryDirectory(prefix="nodeloom-bench-") as tmp:
        async with _serving(Path(tmp)) as (url, engine):
            client = _Client(url, max_tokens)
            try:
                await _node_round(engine.runs, _node_workflow(8))  # the model loaded, warm
                await client.round(8)
                for _ in range(rounds):
                    # Each round starts once the last one's results are stored: neither side
                    # generates while the other's run is still being written.
                    await asyncio.sleep(SETTLE_S)
                    figures["node"].append(await _node_round(engine.runs, document))
                    await asyncio.sleep(SETTLE_S)
                    figures["v1"].append(await client.round(max_tokens))
            finally:
                client.close()
    summary = {}
    for side, rows in figures.items():
        rates = [tokens / last for tokens, _, last in rows]
        firsts = [first * 1000 for _, first, _ in rows]
        summary[side] = (statistics.median(rates), statistics.median(firsts))
        print(f"{side:4} tokens/s median {summary[side][0]:6.1f} (min {min(rates):.1f}, max "
              f"{max(rates):.1f}); first token median {summary[side][1]:6.1f} ms "
              f"(min {min(firsts):.1f}); tokens per round {sorted({t for t, _, _ in rows})}")
    ratio = summary["v1"][0] / summary["node"][0]
    delta = summary["v1"][1] - summary["node"][1]
    print(f"v1 / node tokens/s: {ratio:.3f} (target >= {STREAM_RATE_TARGET})")
    print(f"v1 - node first token: {delta:+.1f} ms (target <= {STREAM_FIRST_TARGET_MS:.0f} ms)")
    met = ratio >= STREAM_RATE_TARGET and delta <= STREAM_FIRST_TARGET_MS
    print(f"stream targets: {'met' if met else 'missed'} ({rounds} rounds of {max_tokens} "
          f"tokens, {MODEL}, temperature 0, seed 7)")  # fmt: skip
    return met


async def main_async(args: argparse.Namespace) -> int:
    met = await v1_stream(args.rounds, args.max_tokens)
    met = await history_load(args.repeat) and met
    print("targets met" if met else "targets missed")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5, help="of the /v1 stream measurement")
    parser.add_argument("--max-tokens", type=int, default=128, dest="max_tokens")
    parser.add_argument("--quick", action="store_true", help="10 repetitions, 2 rounds of 32")
    args = parser.parse_args()
    if args.quick:
        args.repeat, args.rounds, args.max_tokens = 10, 2, 32
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())

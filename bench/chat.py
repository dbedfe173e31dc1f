"""Chat costs (SPEC §13).

    .venv/bin/python bench/chat.py            # every measurement, full size
    .venv/bin/python bench/chat.py --quick    # fewer repetitions

`history_load`: what answering the next turn of a conversation costs before the model starts,
for a conversation of 1,000 messages against one of 10 in the same database: the conversation
and the path from the message stored last up to the root read (one recursive query), made into
the model's messages, then cut to the embedded model's context as the `llm` node does (counted by
its tokenizer, the oldest dropped first; `ModelService.fit`). SQLite in a file, messages of about
60 tokens. Target: the 1,000-message turn <= 10 ms. Medians over the repetitions.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.models import ModelRegistry, ModelService  # noqa: E402
from engine.models.conversation import Message  # noqa: E402
from engine.storage.conversations import ConversationStore  # noqa: E402
from engine.storage.database import Database  # noqa: E402

HISTORY_TARGET_MS = 10.0
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


async def main_async(args: argparse.Namespace) -> int:
    met = await history_load(args.repeat)
    print("targets met" if met else "targets missed")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--quick", action="store_true", help="10 repetitions")
    args = parser.parse_args()
    if args.quick:
        args.repeat = 10
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())

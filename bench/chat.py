"""Chat costs (SPEC §13).

    .venv/bin/python bench/chat.py            # every measurement, full size
    .venv/bin/python bench/chat.py --quick    # fewer repetitions

`history_load`: what a conversation turn reads before its run starts, for a conversation of
1,000 messages against one of 10 in the same database: the conversation, the path from the
message stored last up to the root (one recursive query), made into the model's messages and
trimmed to the model's context (the oldest dropped first). SQLite in a file, messages of about
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

from engine.models.conversation import Message, estimate_tokens, fit  # noqa: E402
from engine.storage.conversations import ConversationStore  # noqa: E402
from engine.storage.database import Database  # noqa: E402

HISTORY_TARGET_MS = 10.0
CONTEXT = 2048 - 256  # the embedded model's context, less an answer of 256 tokens
SENTENCE = "The quick brown fox jumps over the lazy dog while the cat watches. "


async def _conversation(store: ConversationStore, size: int) -> str:
    conversation = await store.create("model:gemma-3-270m")
    parent = None
    for n in range(size):
        role = "user" if n % 2 == 0 else "assistant"
        content = f"{n}: " + SENTENCE * 4
        parent = (
            await store.append(conversation.id, role=role, content=content, parent_id=parent)
        ).id
    return conversation.id


async def _turn(store: ConversationStore, conversation_id: str) -> int:
    """What a turn reads and trims before its run starts; the messages kept."""
    await store.get(conversation_id)
    path = await store.history(conversation_id, None)
    messages = [Message(m.role, m.content) for m in path]  # type: ignore[arg-type]
    kept = fit(messages, [estimate_tokens(m) for m in messages], CONTEXT)
    return len(kept)


async def history_load(repeat: int) -> bool:
    """The 1,000-message turn against the 10-message one; True when the target is met."""
    with tempfile.TemporaryDirectory(prefix="nodeloom-bench-") as tmp:
        database = await Database.connect(f"sqlite+aiosqlite:///{tmp}/chat.db")
        try:
            store = ConversationStore(database)
            small, large = await _conversation(store, 10), await _conversation(store, 1000)
            times: dict[str, list[float]] = {"small": [], "large": []}
            kept = {}
            for _ in range(repeat):
                for name, conversation_id in (("small", small), ("large", large)):
                    started = time.perf_counter()
                    kept[name] = await _turn(store, conversation_id)
                    times[name].append((time.perf_counter() - started) * 1000)
        finally:
            await database.close()
    small_ms, large_ms = (statistics.median(times[name]) for name in ("small", "large"))
    print(f"history: 10 messages      {small_ms:7.2f} ms median of {repeat} ({kept['small']} kept)")
    print(f"history: 1,000 messages   {large_ms:7.2f} ms median ({kept['large']} kept)")
    print(f"history: 1,000 / 10       {large_ms / small_ms:7.2f}x")
    met = large_ms <= HISTORY_TARGET_MS
    print(f"history: target 1,000 <= {HISTORY_TARGET_MS:.0f} ms: {'met' if met else 'missed'}")
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

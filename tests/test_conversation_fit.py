"""Conversations cut to a model's context (SPEC §13): the system messages and the newest others
stay, as few dropped as needed, sizes counted only as far as the limit; with the embedded model,
counted by its tokenizer."""

from __future__ import annotations

import random
from pathlib import Path

from llama_cpp import Llama  # type: ignore[import-untyped]

from engine.models import ModelRegistry, ModelService
from engine.models.conversation import Message, fit, transcript
from tests.support.documents import ROOT


def dropping_oldest(messages: list[Message], sizes: dict[int, int], limit: int) -> list[int]:
    """The rule said plainly: drop the oldest non-system message but the last until it fits."""
    kept = list(range(len(messages)))
    while sum(sizes[i] for i in kept) > limit:
        droppable = [i for i in kept[:-1] if messages[i].role != "system"]
        if not droppable:
            break
        kept.remove(droppable[0])
    return kept


def test_fit_keeps_what_dropping_the_oldest_first_keeps() -> None:
    chooser = random.Random(13)
    for _ in range(300):
        count = chooser.randint(1, 12)
        messages = [
            Message(chooser.choice(["system", "user", "assistant"]), str(n)) for n in range(count)
        ]
        sizes = {n: chooser.randint(1, 9) for n in range(count)}
        limit = chooser.randint(0, 40)
        kept = fit(messages, lambda m, sizes=sizes: sizes[int(m.content)], limit)
        assert [int(m.content) for m in kept] == dropping_oldest(messages, sizes, limit)


def test_a_long_conversation_is_counted_only_as_far_as_it_fits() -> None:
    messages = [Message("system", "be brief")] + [
        Message("user" if n % 2 else "assistant", f"turn {n}") for n in range(1, 1001)
    ]
    counted: list[Message] = []

    def size(message: Message) -> int:
        counted.append(message)
        return 10

    kept = fit(messages, size, 110)
    assert kept == (messages[0], *messages[-10:])
    assert len(counted) == 1 + 11  # the system message, the ten kept and the one that did not fit
    assert fit(messages, lambda m: 1000, 10) == (messages[0], messages[-1])  # the last stays


async def test_the_embedded_model_cuts_by_its_tokenizer(
    embedded_model: Path, tmp_path: Path
) -> None:
    (tmp_path / "models.toml").write_text(
        f'[models.small]\nprovider = "llama_cpp"\npath = "{embedded_model}"\nn_ctx = 512\n'
    )
    models = ModelService(ModelRegistry.load(ROOT / "models"), budget=4 * 1024**3)
    small = ModelService(ModelRegistry.load(tmp_path), budget=4 * 1024**3)
    messages = tuple(
        Message("user" if n % 2 == 0 else "assistant", f"{n}: the same words again " * 3)
        for n in range(400)
    )
    try:
        kept = await models.fit("gemma-3-270m", messages, 256)
        fewer = await small.fit("small", messages, 256)
        assert await models.fit("gemma-3-270m", messages[:4], 256) == messages[:4]
    finally:
        await models.close()
        await small.close()
    assert 1 < len(fewer) < len(kept) < len(messages)
    assert kept == messages[-len(kept) :]  # the newest
    assert fewer == messages[-len(fewer) :]
    vocabulary = Llama(str(embedded_model), vocab_only=True, verbose=False)

    def tokens(part: tuple[Message, ...]) -> int:
        return len(vocabulary.tokenize(transcript(part).encode(), add_bos=True, special=True))

    # What is kept fits the context (2,048) with 256 left for the answer; one more would not.
    assert tokens(kept) <= 2048 - 256 < tokens(messages[-len(kept) - 1 :])

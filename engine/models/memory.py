"""How much memory models may use, and how much a GGUF model will need once loaded."""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from engine.models.errors import ModelConfigInvalid
from engine.models.gguf import ArrayInfo, read_metadata

__all__ = [
    "BUDGET_ENV",
    "DEFAULT_BUDGET_SHARE",
    "default_threads",
    "estimate_gguf",
    "format_size",
    "memory_budget",
    "parse_size",
    "total_memory",
]

BUDGET_ENV = "NODELOOM_MODEL_MEMORY_BUDGET"
# Without a budget, loaded models may use this share of the machine's memory.
DEFAULT_BUDGET_SHARE = 0.5
_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "t": 1000**4,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")
_COMPUTE_OVERHEAD = 16 * 1024**2


def parse_size(text: str) -> int:
    """Bytes from ``"4294967296"``, ``"4GiB"``, ``"512 MB"`` (powers of 1000 or of 1024)."""
    match = _SIZE.match(text)
    unit = match[2].lower() if match else None
    if match is None or unit not in _UNITS:
        raise ValueError(f"expected bytes or a size like 4GiB or 512MB, got {text!r}")
    return int(float(match[1]) * _UNITS[unit])


def format_size(size: int) -> str:
    for unit, factor in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size >= factor:
            return f"{size / factor:.1f} {unit}"
    return f"{size} B"


def total_memory() -> int | None:
    """The machine's physical memory in bytes, when the OS says."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def memory_budget(environ: Mapping[str, str]) -> int:
    """``NODELOOM_MODEL_MEMORY_BUDGET`` of ``environ`` (a process's environment) in bytes;
    default half the machine's memory (4 GiB when that is unknown)."""
    value = environ.get(BUDGET_ENV, "").strip()
    if value:
        try:
            budget = parse_size(value)
        except ValueError as exc:
            raise ModelConfigInvalid(f"{BUDGET_ENV}: {exc}") from None
        if budget <= 0:
            raise ModelConfigInvalid(f"{BUDGET_ENV}: must be more than 0, got {value!r}")
        return budget
    total = total_memory()
    return int(total * DEFAULT_BUDGET_SHARE) if total else 4 * 1024**3


def default_threads() -> int:
    """The CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def estimate_gguf(path: Path, n_ctx: int, n_batch: int) -> int:
    """Bytes a GGUF model needs once llama.cpp has loaded it with ``n_ctx`` and ``n_batch``:

    - the file (the weights are mapped into memory as they are),
    - the KV cache: for each layer and each of the ``n_ctx`` cells, the keys and values of every
      KV head at 2 bytes (f16) per value, from the GGUF header,
    - llama.cpp's compute buffer, dominated by one batch of logits
      (``n_vocab * min(n_batch, n_ctx) * 4`` bytes), plus 16 MiB for the rest.

    This is what llama.cpp reserves, an upper bound of what becomes resident. The header is read
    once per file version. A missing or corrupt file raises `ModelUnavailable`.
    """
    stat = path.stat()
    shape = _shape(path, stat.st_size, stat.st_mtime_ns)
    kv_cache = shape.layers * n_ctx * shape.kv_width * 2
    compute = shape.vocab * min(n_batch, n_ctx) * 4 + _COMPUTE_OVERHEAD
    return stat.st_size + kv_cache + compute


class _Shape:
    __slots__ = ("kv_width", "layers", "vocab")

    def __init__(self, layers: int, kv_width: int, vocab: int) -> None:
        self.layers, self.kv_width, self.vocab = layers, kv_width, vocab


@functools.lru_cache(maxsize=64)
def _shape(path: Path, size: int, mtime_ns: int) -> _Shape:
    """Layer count, KV values per cell and layer (keys + values), vocabulary size."""
    meta = read_metadata(path)
    arch = meta.get("general.architecture", "")

    def number(key: str, default: int) -> int:
        value: Any = meta.get(f"{arch}.{key}", default)
        if isinstance(value, list):  # per-layer values: size for the largest
            value = max(value, default=default)
        return int(value) if isinstance(value, int | float) else default

    embedding = number("embedding_length", 4096)
    heads = max(number("attention.head_count", 1), 1)
    kv_heads = number("attention.head_count_kv", heads)
    key_length = number("attention.key_length", embedding // heads)
    value_length = number("attention.value_length", embedding // heads)
    tokens = meta.get("tokenizer.ggml.tokens")
    vocab = tokens.length if isinstance(tokens, ArrayInfo) else 32_000
    return _Shape(number("block_count", 32), kv_heads * (key_length + value_length), vocab)

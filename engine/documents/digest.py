"""Canonical JSON bytes and SHA-256 digests of values: the material cache keys are made of."""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec

__all__ = ["canonical", "digest"]

_encoder = msgspec.json.Encoder(order="sorted")


def canonical(value: Any) -> bytes:
    """Deterministic JSON: sorted keys, no whitespace. Raises `TypeError` for non-JSON values."""
    return _encoder.encode(value)


def digest(value: Any) -> str:
    return hashlib.sha256(_encoder.encode(value)).hexdigest()

"""What every export format is made from: a table of cells, and a cell as text."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

_encoder = msgspec.json.Encoder(order="sorted")


@dataclass(slots=True)
class Table:
    title: str
    columns: list[str]
    rows: list[list[Any]]


def text(value: Any) -> str:
    """A cell as text: strings as they are, nothing as empty, anything else as JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return _encoder.encode(value).decode()

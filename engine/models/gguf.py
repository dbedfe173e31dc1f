"""Just enough of the GGUF format to check a file and size a model before llama.cpp loads it.

A GGUF file starts with ``GGUF``, a version, the tensor and key-value counts, then typed
key-value pairs (little-endian). Arrays of strings (the token list) are skipped, not decoded.
"""

from __future__ import annotations

import mmap
import struct
from pathlib import Path
from typing import Any

from engine.models.errors import ModelUnavailable

__all__ = ["MAGIC", "ArrayInfo", "read_metadata"]

MAGIC = b"GGUF"
_SCALARS = {
    0: struct.Struct("<B"),
    1: struct.Struct("<b"),
    2: struct.Struct("<H"),
    3: struct.Struct("<h"),
    4: struct.Struct("<I"),
    5: struct.Struct("<i"),
    6: struct.Struct("<f"),
    7: struct.Struct("<?"),
    10: struct.Struct("<Q"),
    11: struct.Struct("<q"),
    12: struct.Struct("<d"),
}
_STRING, _ARRAY = 8, 9
_U32, _U64 = struct.Struct("<I"), struct.Struct("<Q")
_MAX_DECODED_ARRAY = 4096  # longer numeric arrays are reported by length only


class ArrayInfo(tuple[int, int]):
    """An array value read without its items: (item type, length)."""

    @property
    def length(self) -> int:
        return self[1]


def read_metadata(path: Path) -> dict[str, Any]:
    """The header's key-value pairs: scalars, strings, short numeric arrays as lists, other
    arrays as `ArrayInfo`. A file that is missing, not GGUF or cut short raises
    `ModelUnavailable` naming the file."""
    try:
        with path.open("rb") as file:
            if not file.seek(0, 2):
                return _Reader(b"").metadata()
            with mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
                return _Reader(data).metadata()
    except FileNotFoundError:
        raise ModelUnavailable(f"model file {path} does not exist") from None
    except struct.error:
        raise ModelUnavailable(
            f"{path} is not a valid GGUF file: it ends inside its header"
        ) from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise ModelUnavailable(f"{path} is not a valid GGUF file: {exc}") from None
    except OSError as exc:
        raise ModelUnavailable(f"cannot read {path}: {exc.strerror or exc}") from None


class _Reader:
    def __init__(self, data: mmap.mmap | bytes) -> None:
        self.data = data
        self.offset = 0

    def metadata(self) -> dict[str, Any]:
        if not self.data:
            raise ValueError("the file is empty")
        if self.data[:4] != MAGIC:
            raise ValueError("it does not start with GGUF")
        self.offset = 4
        version = self.unpack(_U32)
        if version not in (2, 3):
            raise ValueError(f"GGUF version {version} is not supported")
        self.unpack(_U64)  # tensor count
        count = self.unpack(_U64)
        found: dict[str, Any] = {}
        for _ in range(count):
            key = self.string()
            found[key] = self.value(self.unpack(_U32))
        return found

    def value(self, kind: int) -> Any:
        if kind in _SCALARS:
            return self.unpack(_SCALARS[kind])
        if kind == _STRING:
            return self.string()
        if kind != _ARRAY:
            raise ValueError(f"unknown value type {kind} at byte {self.offset}")
        item_kind = self.unpack(_U32)
        length = self.unpack(_U64)
        if item_kind == _STRING:
            for _ in range(length):
                self.skip(self.unpack(_U64))
            return ArrayInfo((item_kind, length))
        if item_kind not in _SCALARS:
            raise ValueError(f"unsupported array item type {item_kind}")
        item = _SCALARS[item_kind]
        if length <= _MAX_DECODED_ARRAY:
            return [self.unpack(item) for _ in range(length)]
        self.skip(item.size * length)
        return ArrayInfo((item_kind, length))

    def string(self) -> str:
        size = self.unpack(_U64)
        start = self.offset
        self.skip(size)
        return self.data[start : self.offset].decode("utf-8")

    def unpack(self, fmt: struct.Struct) -> Any:
        (value,) = fmt.unpack_from(self.data, self.offset)
        self.offset += fmt.size
        return value

    def skip(self, size: int) -> None:
        self.offset += size
        if self.offset > len(self.data):
            raise ValueError("the file ends inside its header")

"""`file_read`: a file of the workspace as text, JSON, CSV rows or lines.

The file's SHA-256 is part of the node's cache key (`fingerprint`), so a changed file is never
served from an earlier run; the bytes hashed are the bytes parsed. File I/O runs in a thread.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar

from engine.documents.issues import Issue
from engine.errors import NodeFailure
from engine.nodes.types import CheckContext, NodeContext, NodeType, Port
from nodes.paths import PATH_PARAM, node_target, path_issue, relative

FORMATS = ["text", "json", "csv", "lines"]
MAX_READ_BYTES = 64 * 1024 * 1024


class FileReadNode(NodeType):
    type = "file_read"
    title = "Read file"
    category = "files"
    description = (
        "Reads a file inside the workspace folder: `text` (a string), `json` (the parsed "
        "value), `csv` (a list of row objects keyed by the header) or `lines` (a list of "
        "strings). The `path` input, when connected, overrides the `path` param."
    )
    reads_outside_world = True
    params_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {
            "path": PATH_PARAM,
            "format": {"enum": FORMATS, "default": "text"},
        },
        "additionalProperties": False,
    }
    inputs = (Port("path", "string", required=False, description="Overrides the param."),)
    outputs = (Port("content", "any"),)

    @classmethod
    def check(cls, params: Mapping[str, Any], context: CheckContext) -> Iterable[Issue]:
        if issue := path_issue(params.get("path"), context.workspace):
            yield issue

    def __init__(self, params: Mapping[str, Any]) -> None:
        super().__init__(params)
        self._read: tuple[Path, bytes] | None = None  # what `fingerprint` read, for `run`

    async def fingerprint(self, inputs: Mapping[str, Any], context: NodeContext) -> str | None:
        try:
            target = node_target(context.workspace, self.params, inputs)
            data = await asyncio.to_thread(_read_bytes, target)
        except (NodeFailure, OSError):
            return None  # `run` fails with the reason
        self._read = (target, data)
        return hashlib.sha256(data).hexdigest()

    async def run(self, inputs: dict[str, Any], context: NodeContext) -> dict[str, Any]:
        target = node_target(context.workspace, self.params, inputs)
        name = relative(context.workspace, target)
        if self._read is not None and self._read[0] == target:
            data = self._read[1]
        else:
            try:
                data = await asyncio.to_thread(_read_bytes, target)
            except FileNotFoundError:
                raise NodeFailure(f"no file {name!r} in the workspace", retryable=False) from None
            except OSError as exc:
                raise NodeFailure(f"cannot read {name!r}: {exc.strerror or exc}") from None
        fmt = self.params.get("format", "text")
        content = await asyncio.to_thread(parse, data, fmt, name)
        return {"content": content}


def _read_bytes(target: Path) -> bytes:
    with target.open("rb") as file:
        data = file.read(MAX_READ_BYTES + 1)
    if len(data) > MAX_READ_BYTES:
        raise NodeFailure(f"file is larger than {MAX_READ_BYTES} bytes", retryable=False)
    return data


def parse(data: bytes, fmt: str, name: str) -> Any:
    """File bytes as the node's ``format`` gives them; `NodeFailure` naming the file if not."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise NodeFailure(f"{name!r} is not UTF-8 text: {exc}", retryable=False) from None
    if fmt == "json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise NodeFailure(f"{name!r} is not valid JSON: {exc}", retryable=False) from None
    if fmt == "csv":
        return _csv_rows(text, name)
    if fmt == "lines":
        return text.splitlines()
    return text


def _csv_rows(text: str, name: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    try:
        for row in csv.DictReader(io.StringIO(text, newline="")):
            if None in row:
                raise NodeFailure(
                    f"{name!r} line {len(rows) + 2} has more fields than the header",
                    retryable=False,
                )
            rows.append(row)
    except csv.Error as exc:
        raise NodeFailure(f"{name!r} is not valid CSV: {exc}", retryable=False) from None
    return rows

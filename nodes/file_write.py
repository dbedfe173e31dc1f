"""`file_write`: writes its `content` to a file of the workspace as text, JSON, CSV or lines."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar

from engine.documents.issues import Issue
from engine.errors import NodeFailure
from engine.nodes.types import CheckContext, NodeContext, NodeType, Port
from nodes.file_read import FORMATS
from nodes.paths import PATH_PARAM, node_target, path_issue, relative

_OPEN_MODES = {"overwrite": "w", "append": "a", "new": "x"}


class FileWriteNode(NodeType):
    type = "file_write"
    title = "Write file"
    category = "files"
    description = (
        "Writes `content` to a file inside the workspace folder and gives its `path`: `text` "
        "takes a string, `json` any value, `csv` a list of objects (one row each, the header "
        "from their keys), `lines` a list (one item per line; a newline inside an item "
        "becomes a space). `mode`: `overwrite`, `append` "
        "or `new` (fails if the file exists). The `path` input overrides the `path` param."
    )
    params_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {
            "path": PATH_PARAM,
            "format": {"enum": FORMATS, "default": "text"},
            "mode": {"enum": list(_OPEN_MODES), "default": "overwrite"},
        },
        "additionalProperties": False,
    }
    inputs = (
        Port("content", "any"),
        Port("path", "string", required=False, description="Overrides the param."),
    )
    outputs = (Port("path", "string", description="Relative to the workspace folder."),)

    @classmethod
    def check(cls, params: Mapping[str, Any], context: CheckContext) -> Iterable[Issue]:
        if issue := path_issue(params.get("path"), context.workspace):
            yield issue
        if params.get("format") == "json" and params.get("mode") == "append":
            yield Issue(
                "invalid_params",
                "format json cannot append (the file would no longer be one JSON value); "
                "use format lines",
                path="/mode",
            )

    async def run(self, inputs: dict[str, Any], context: NodeContext) -> dict[str, Any]:
        target = node_target(context.workspace, self.params, inputs)
        name = relative(context.workspace, target)
        fmt = self.params.get("format", "text")
        mode = self.params.get("mode", "overwrite")
        try:
            await asyncio.to_thread(_write, target, inputs["content"], fmt, mode)
        except FileExistsError:
            raise NodeFailure(
                f"file {name!r} already exists (mode: new never overwrites)", retryable=False
            ) from None
        except IsADirectoryError:
            raise NodeFailure(f"{name!r} is a folder", retryable=False) from None
        except OSError as exc:
            raise NodeFailure(f"cannot write {name!r}: {exc.strerror or exc}") from None
        return {"path": name}


def _write(target: Path, content: Any, fmt: str, mode: str) -> None:
    header: list[str] | None = None
    if fmt == "csv" and mode == "append" and target.is_file() and target.stat().st_size:
        with target.open(encoding="utf-8-sig", newline="") as file:
            header = next(csv.reader(file), None)
    text = serialise(content, fmt, header)
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open(_OPEN_MODES[mode], encoding="utf-8", newline="") as file:
        file.write(text)


def serialise(content: Any, fmt: str, header: list[str] | None = None) -> str:
    """``content`` as file text in ``format``; `NodeFailure` when it does not fit the format."""
    if fmt == "json":
        return json.dumps(content, ensure_ascii=False, indent=2) + "\n"
    if fmt == "lines":
        if not isinstance(content, list):
            raise NodeFailure(f"format lines takes a list, got {_kind(content)}", retryable=False)
        return "".join(_line(item) + "\n" for item in content)
    if fmt == "csv":
        return _csv(content, header)
    if not isinstance(content, str):
        raise NodeFailure(
            f"format text takes a string, got {_kind(content)} (use format json)",
            retryable=False,
        )
    return content


def _csv(rows: Any, header: list[str] | None) -> str:
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        raise NodeFailure("format csv takes a list of objects (one per row)", retryable=False)
    fields = header or list(dict.fromkeys(str(key) for row in rows for key in row))
    for number, row in enumerate(rows):
        extra = [str(key) for key in row if str(key) not in fields]
        if extra:
            raise NodeFailure(
                f"row {number} has columns not in the file's header: {', '.join(extra)}",
                retryable=False,
            )
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    if header is None:
        writer.writeheader()
    writer.writerows({str(k): _cell(v) for k, v in row.items()} for row in rows)
    return buffer.getvalue()


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, dict | list | bool):
        return json.dumps(value, ensure_ascii=False)
    return value


def _line(item: Any) -> str:
    text = item if isinstance(item, str) else json.dumps(item, ensure_ascii=False)
    return text.rstrip("\r\n").replace("\r\n", " ").replace("\n", " ").replace("\r", " ")


_KINDS: dict[type, str] = {dict: "object", list: "array", str: "string"}


def _kind(value: Any) -> str:
    return _KINDS.get(type(value), type(value).__name__)

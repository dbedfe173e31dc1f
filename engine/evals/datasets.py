"""A dataset's rows (SPEC §17): given as JSON, or read from a CSV or JSONL workspace file,
where a column `expected.<output>` is what the row expects of that output and every other
column is an input. Rows are checked against the workflow's inputs before anything runs."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import msgspec

from engine.documents.inputs import coerce, input_schemas, resolve_inputs
from engine.documents.plan import Plan
from engine.errors import InputsInvalid

__all__ = ["Row", "check_rows", "parse_file"]

EXPECTED = "expected."


class Row(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    inputs: dict[str, Any] = {}
    expected: dict[str, Any] = {}


def parse_file(name: str, text: str) -> list[Row]:
    """The rows of a CSV (``.csv``) or JSON Lines (``.jsonl``) file; `InputsInvalid` naming
    the line that does not parse."""
    if name.endswith(".jsonl"):
        rows = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rows.append(msgspec.json.decode(line, type=Row))
            except msgspec.DecodeError as exc:
                raise InputsInvalid(f"{name} line {number}: {exc}") from None
        return rows
    if name.endswith(".csv"):
        try:
            records = list(csv.DictReader(io.StringIO(text), strict=True))
        except csv.Error as exc:
            raise InputsInvalid(f"{name}: not CSV: {exc}") from None
        rows = []
        for number, record in enumerate(records, start=2):  # line 1 is the header
            if None in record:
                raise InputsInvalid(f"{name} line {number}: more values than columns")
            inputs = {k: v for k, v in record.items() if not k.startswith(EXPECTED)}
            expected = {
                key.removeprefix(EXPECTED): _value(value)
                for key, value in record.items()
                if key.startswith(EXPECTED)
            }
            rows.append(Row(inputs=inputs, expected=expected))
        return rows
    raise InputsInvalid(f"{name}: a dataset file is .csv or .jsonl")


def check_rows(plan: Plan, rows: list[Row]) -> list[dict[str, Any]]:
    """Each row's inputs as a run of ``plan`` takes them (text from a CSV converted to the
    input's type); `InputsInvalid` naming every row and field that does not fit."""
    schemas = input_schemas(plan)
    resolved, problems = [], []
    for index, row in enumerate(rows):
        given = {
            name: coerce(value, schemas.get(name, {})) if isinstance(value, str) else value
            for name, value in row.inputs.items()
        }
        try:
            resolved.append(resolve_inputs(plan, given))
        except InputsInvalid as exc:
            problems.append(f"rows/{index}: {exc.detail}")
    if problems:
        raise InputsInvalid("; ".join(problems))
    if not rows:
        raise InputsInvalid("the dataset has no rows")
    return resolved


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text

"""Evaluators (SPEC §17): each scores one output of a run against what a dataset row expects,
from 0 to 1, and says whether it passes. Their specs are checked before any run starts."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any, Literal

import jsonschema
import msgspec

from engine.errors import InputsInvalid

__all__ = ["KINDS", "Evaluator", "Score", "check_evaluators", "score"]

Kind = Literal["equals", "contains", "regex", "json_schema", "numeric_close"]
KINDS: tuple[str, ...] = ("equals", "contains", "regex", "json_schema", "numeric_close")


class Evaluator(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """What to check of ``output``: ``value`` (else the row's expected value for that output),
    ``pattern`` (regex), ``schema`` (json_schema), ``tolerance`` (numeric_close, relative)."""

    output: str
    kind: Kind
    value: Any = None
    pattern: str | None = None
    schema: dict[str, Any] | None = None
    tolerance: float = 1e-6


class Score(msgspec.Struct, kw_only=True):
    output: str
    kind: str
    score: float
    passed: bool
    note: str = ""


def check_evaluators(evaluators: list[Evaluator], outputs: set[str]) -> None:
    """`InputsInvalid` naming each evaluator that cannot work (before anything runs)."""
    problems = []
    for index, evaluator in enumerate(evaluators):
        where = f"evaluators/{index}"
        if evaluator.output not in outputs:
            known = ", ".join(sorted(outputs)) or "none"
            problems.append(f"{where}: the workflow has no output {evaluator.output!r} ({known})")
        if evaluator.kind == "regex":
            try:
                re.compile(evaluator.pattern or "")
            except re.error as exc:
                problems.append(f"{where}: pattern does not compile: {exc}")
            if not evaluator.pattern:
                problems.append(f"{where}: a regex evaluator needs a `pattern`")
        if evaluator.kind == "json_schema":
            try:
                jsonschema.Draft202012Validator.check_schema(evaluator.schema or {})
            except jsonschema.SchemaError as exc:
                problems.append(f"{where}: not a JSON Schema: {exc.message}")
            if evaluator.schema is None:
                problems.append(f"{where}: a json_schema evaluator needs a `schema`")
    if problems:
        raise InputsInvalid("; ".join(problems))


def score(evaluator: Evaluator, outputs: Mapping[str, Any], expected: Mapping[str, Any]) -> Score:
    """The evaluator's score of a run's ``outputs`` for a row expecting ``expected``."""
    found = outputs.get(evaluator.output)
    wanted = evaluator.value if evaluator.value is not None else expected.get(evaluator.output)

    def result(passed: bool, value: float | None = None, note: str = "") -> Score:
        points = (1.0 if passed else 0.0) if value is None else value
        return Score(
            output=evaluator.output, kind=evaluator.kind, score=points, passed=passed, note=note
        )

    if evaluator.output not in outputs:
        return result(False, note="no such output in the run")
    match evaluator.kind:
        case "equals":
            return result(found == wanted)
        case "contains":
            return result(str(wanted).lower() in _text(found).lower())
        case "regex":
            return result(re.search(evaluator.pattern or "", _text(found)) is not None)
        case "json_schema":
            error = jsonschema.exceptions.best_match(
                jsonschema.Draft202012Validator(evaluator.schema or {}).iter_errors(found)
            )
            return result(error is None, note="" if error is None else error.message)
        case "numeric_close":
            try:
                a, b = float(found), float(wanted)  # type: ignore[arg-type]
            except (TypeError, ValueError):
                return result(False, note=f"not numbers: {found!r}, {wanted!r}")
            close = math.isclose(a, b, rel_tol=evaluator.tolerance, abs_tol=evaluator.tolerance)
            return result(close, note="" if close else f"{a} is not {b}")
    raise AssertionError(evaluator.kind)  # pragma: no cover


def _text(value: Any) -> str:
    return value if isinstance(value, str) else msgspec.json.encode(value).decode()

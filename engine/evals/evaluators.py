"""Evaluators (SPEC §17): each scores one output of a run against what a dataset row expects,
from 0 to 1, and says whether it passes. Their specs are checked before any run starts."""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any, Literal

import jsonschema
import msgspec

from engine.errors import InputsInvalid
from engine.models import GenerationRequest, ModelError

if TYPE_CHECKING:
    from engine.models import ModelService

__all__ = ["KINDS", "Evaluator", "Score", "check_evaluators", "judge", "score"]

Kind = Literal["equals", "contains", "regex", "json_schema", "numeric_close", "llm_judge"]
KINDS: tuple[str, ...] = (
    "equals", "contains", "regex", "json_schema", "numeric_close", "llm_judge"
)
# What a judging model writes: a score from 0 to 1 and why, under this schema's grammar.
VERDICT: dict[str, Any] = {
    "type": "object",
    "properties": {
        "score": {"type": "number", "minimum": 0, "maximum": 1},
        "reason": {"type": "string", "maxLength": 200},
    },
    "required": ["score", "reason"],
    "additionalProperties": False,
}
PASS_SCORE = 0.5  # a judged output passes from this score on


class Evaluator(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """What to check of ``output``: ``value`` (else the row's expected value for that output),
    ``pattern`` (regex), ``schema`` (json_schema), ``tolerance`` (numeric_close, relative);
    for ``llm_judge``, the registry ``model`` that scores the output with the ``rubric``."""

    output: str
    kind: Kind
    value: Any = None
    pattern: str | None = None
    schema: dict[str, Any] | None = None
    tolerance: float = 1e-6
    model: str | None = None
    rubric: str | None = None


class Score(msgspec.Struct, kw_only=True):
    output: str
    kind: str
    score: float
    passed: bool
    note: str = ""
    usage: dict[str, int] | None = None  # a judging model's


def check_evaluators(
    evaluators: list[Evaluator], outputs: set[str], models: Collection[str] | None = None
) -> None:
    """`InputsInvalid` naming each evaluator that cannot work (before anything runs); ``models``
    are the registry's (None: any name)."""
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
        if evaluator.kind == "llm_judge":
            if not evaluator.model or not evaluator.rubric:
                problems.append(f"{where}: an llm_judge evaluator needs a `model` and a `rubric`")
            elif models is not None and evaluator.model not in models:
                known = ", ".join(sorted(models)) or "none"
                problems.append(f"{where}: unknown model {evaluator.model!r} (models: {known})")
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
    raise ValueError(f"{evaluator.kind} is scored by `judge`")


async def judge(
    evaluator: Evaluator,
    outputs: Mapping[str, Any],
    expected: Mapping[str, Any],
    models: ModelService | None,
) -> Score:
    """An ``llm_judge`` score: the model reads the rubric, the expected value (if any) and the
    output, and writes a verdict under `VERDICT`'s grammar (temperature 0)."""
    if evaluator.output not in outputs:
        return Score(output=evaluator.output, kind=evaluator.kind, score=0.0, passed=False,
                     note="no such output in the run")  # fmt: skip
    wanted = evaluator.value if evaluator.value is not None else expected.get(evaluator.output)
    lines = [f"Rubric: {evaluator.rubric}"]
    if wanted is not None:
        lines.append(f"Expected: {_text(wanted)}")
    lines += [f"Output: {_text(outputs[evaluator.output])}", "Verdict as JSON:"]
    request = GenerationRequest(
        prompt="\n".join(lines), temperature=0, max_tokens=96, response_schema=VERDICT, seed=0
    )
    def failed(why: str) -> Score:
        return Score(output=evaluator.output, kind=evaluator.kind, score=0.0, passed=False,
                     note=f"the judge failed: {why}")  # fmt: skip

    if models is None:
        return failed("an llm_judge evaluator needs the server's models")
    try:
        completion = await models.generate(evaluator.model or "", request, lambda _: None)
    except ModelError as exc:
        return failed(exc.detail)
    try:
        verdict = msgspec.json.decode(completion.text)
        points = min(1.0, max(0.0, float(verdict["score"])))
        reason = str(verdict.get("reason", ""))
    except (msgspec.DecodeError, KeyError, TypeError, ValueError):
        points, reason = 0.0, f"the judge wrote no verdict: {completion.text[:100]!r}"
    return Score(
        output=evaluator.output,
        kind=evaluator.kind,
        score=points,
        passed=points >= PASS_SCORE,
        note=reason,
        usage=completion.usage,
    )


def _text(value: Any) -> str:
    return value if isinstance(value, str) else msgspec.json.encode(value).decode()

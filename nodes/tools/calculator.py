"""`calculator`: arithmetic parsed with `ast` and evaluated node by node; nothing is `eval`ed."""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from typing import Any, ClassVar

from nodes.tools.base import Tool, ToolError

MAX_LENGTH = 1000  # characters of an expression
MAX_INT_BITS = 10_000  # ~3000 decimal digits: big enough to calculate, small enough to be quick

Number = int | float

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}
_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "abs": abs,
    "round": round,
    "min": min,
    "max": max,
    "sqrt": math.sqrt,
    "floor": math.floor,
    "ceil": math.ceil,
    "log": math.log,
    "exp": math.exp,
}
_CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e}


class Calculator(Tool):
    name = "calculator"
    description = (
        "Evaluates arithmetic: numbers, + - * / // % **, parentheses, the constants pi and e, "
        "and abs, round, min, max, sqrt, floor, ceil, log, exp."
    )
    args_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {
            "expression": {"type": "string", "minLength": 1, "maxLength": MAX_LENGTH},
        },
        "required": ["expression"],
        "additionalProperties": False,
    }

    async def call(self, args: dict[str, Any], *, idempotency_key: str) -> Any:
        return evaluate(args["expression"])


def evaluate(expression: str) -> Number:
    """The value of an arithmetic expression, or `ToolError` saying what is not allowed."""
    if len(expression) > MAX_LENGTH:
        raise ToolError(f"expression is longer than {MAX_LENGTH} characters")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        raise ToolError(f"not an arithmetic expression: {expression!r} ({exc})") from None
    try:
        value = _eval(tree.body)
    except ToolError:
        raise
    except (ArithmeticError, ValueError, TypeError, RecursionError) as exc:
        raise ToolError(f"cannot calculate {expression!r}: {exc}") from None
    return value


def _eval(node: ast.expr) -> Number:
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, int | float):
            raise ToolError(f"only numbers are allowed, not {node.value!r}")
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow):
            _check_power(left, right)
        return _checked(_BINARY[type(node.op)](left, right))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _checked(_UNARY[type(node.op)](_eval(node.operand)))
    if isinstance(node, ast.Name):
        if node.id in _CONSTANTS:
            return _CONSTANTS[node.id]
        raise ToolError(f"unknown name {node.id!r} (constants: pi, e)")
    if isinstance(node, ast.Call):
        function = node.func.id if isinstance(node.func, ast.Name) else None
        if function not in _FUNCTIONS or node.keywords:
            allowed = ", ".join(_FUNCTIONS)
            raise ToolError(f"only calls of {allowed} with plain arguments are allowed")
        return _checked(_FUNCTIONS[function](*(_eval(arg) for arg in node.args)))
    raise ToolError(f"{type(node).__name__} is not allowed in arithmetic")


def _check_power(base: Number, exponent: Number) -> None:
    """Refuse integer powers whose result would be huge before computing them (``9**9**9``)."""
    if isinstance(base, int) and isinstance(exponent, int) and abs(base) > 1 and exponent > 0:
        bits = max(base.bit_length() - 1, 1) * exponent
        if exponent > MAX_INT_BITS or bits > MAX_INT_BITS:
            raise ToolError(f"exponent too large: the result would exceed {MAX_INT_BITS} bits")


def _checked(value: Number) -> Number:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ToolError(f"the result is not a real number: {value!r}")
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise ToolError(f"result too large: more than {MAX_INT_BITS} bits")
    if isinstance(value, float) and not math.isfinite(value):
        raise ToolError("result is not a finite number")
    return value

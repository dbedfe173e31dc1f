"""The one sandboxed Jinja2 environment templates and expressions run in."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import jinja2
from jinja2 import meta
from jinja2.sandbox import ImmutableSandboxedEnvironment

from engine.issues import Issue

ENV = ImmutableSandboxedEnvironment(
    undefined=jinja2.StrictUndefined,
    autoescape=False,
    keep_trailing_newline=True,
)


@lru_cache(maxsize=4096)
def compile_template(source: str) -> jinja2.Template:
    return ENV.from_string(source)


@lru_cache(maxsize=4096)
def template_variables(source: str) -> tuple[str, ...]:
    """Names the template reads from its context, in order of first use (globals excluded)."""
    names = meta.find_undeclared_variables(ENV.parse(source))
    order = {name: source.find(name) for name in names if name not in ENV.globals}
    return tuple(sorted(order, key=lambda name: (order[name], name)))


@lru_cache(maxsize=4096)
def compile_expression(source: str) -> Any:
    return ENV.compile_expression(source)


def syntax_issue(source: str, *, expression: bool = False, path: str) -> Issue | None:
    """A ``template_syntax`` issue naming the line, or None when the source parses."""
    try:
        if expression:
            compile_expression(source)
        else:
            ENV.parse(source)
    except jinja2.TemplateSyntaxError as exc:
        return Issue("template_syntax", f"line {exc.lineno}: {exc.message}", path=path)
    return None

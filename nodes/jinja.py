"""The one sandboxed Jinja2 environment templates and expressions run in."""

from __future__ import annotations

import keyword
import re
from functools import lru_cache
from typing import Any

import jinja2
from jinja2 import meta, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

from engine.documents.issues import Issue

ENV = ImmutableSandboxedEnvironment(
    undefined=jinja2.StrictUndefined,
    autoescape=False,
    keep_trailing_newline=True,
)


@lru_cache(maxsize=4096)
def compile_template(source: str) -> jinja2.Template:
    return ENV.from_string(source)


# Plain substitution ``{{ name }}`` needs no parser: text around such placeholders only.
_PLACEHOLDER = re.compile(r"\{\{-?\s*([A-Za-z_][A-Za-z0-9_]*)\s*-?\}\}")
_SPECIAL = frozenset(
    {
        *keyword.kwlist,
        "true",
        "false",
        "none",
        "loop",
        "self",
        "caller",
        "varargs",
        "kwargs",
        "super",
    }
)


def _plain_variables(source: str) -> list[str] | None:
    names = _PLACEHOLDER.findall(source)
    rest = _PLACEHOLDER.sub("", source)
    if "{{" in rest or "{%" in rest or "{#" in rest or "{{{" in source:
        return None
    if any(name in _SPECIAL for name in names):
        return None
    return names


def _read_names(parsed: nodes.Template) -> set[str]:
    """What the template reads. Without any assignment (``for``, ``set``, ``with``, macros,
    imports…) that is every loaded name, which a walk of the tree finds far faster than
    `meta.find_undeclared_variables` (it runs the code generator); otherwise ask Jinja."""
    loaded: set[str] = set()
    for name in parsed.find_all(nodes.Name):
        if name.ctx != "load":
            return meta.find_undeclared_variables(parsed)
        loaded.add(name.name)
    if loaded & _SPECIAL or any(True for _ in parsed.find_all(_SCOPED)):
        return meta.find_undeclared_variables(parsed)
    return loaded


_SCOPED = (
    nodes.For,
    nodes.Macro,
    nodes.CallBlock,
    nodes.FilterBlock,
    nodes.With,
    nodes.Block,
    nodes.Include,
    nodes.Import,
    nodes.FromImport,
    nodes.Extends,
    nodes.Scope,
    nodes.OverlayScope,
    nodes.Assign,
    nodes.AssignBlock,
    nodes.NSRef,
)


@lru_cache(maxsize=65536)
def _analyse(source: str) -> tuple[str, ...] | jinja2.TemplateSyntaxError:
    """One parse per distinct source: the variables it reads, or its syntax error."""
    plain = _plain_variables(source)
    if plain is not None:
        names: set[str] = set(plain)
    else:
        try:
            parsed = ENV.parse(source)
        except jinja2.TemplateSyntaxError as exc:
            return exc
        names = _read_names(parsed)
    order = {name: source.find(name) for name in names if name not in ENV.globals}
    return tuple(sorted(order, key=lambda name: (order[name], name)))


def template_variables(source: str) -> tuple[str, ...]:
    """Names the template reads from its context, in order of first use (globals excluded)."""
    analysed = _analyse(source)
    if isinstance(analysed, jinja2.TemplateSyntaxError):
        raise analysed
    return analysed


@lru_cache(maxsize=4096)
def compile_expression(source: str) -> Any:
    return ENV.compile_expression(source)


def syntax_issue(source: str, *, expression: bool = False, path: str) -> Issue | None:
    """A ``template_syntax`` issue naming the line, or None when the source parses."""
    if expression:
        try:
            compile_expression(source)
        except jinja2.TemplateSyntaxError as exc:
            return Issue("template_syntax", f"line {exc.lineno}: {exc.message}", path=path)
        return None
    analysed = _analyse(source)
    if isinstance(analysed, jinja2.TemplateSyntaxError):
        return Issue("template_syntax", f"line {analysed.lineno}: {analysed.message}", path=path)
    return None

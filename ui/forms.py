"""Forms generated from JSON Schemas: a node's params, a run's inputs. Each field reports a bad
value on itself and keeps what the user typed."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from nicegui import ui
from nicegui.elements.mixins.value_element import ValueElement

LONG_TEXT = {"template", "prompt", "system_prompt", "instruction", "expression", "description"}
COMMON = {"timeout_s", "retries", "retry_backoff_s", "cache"}
MISSING: Any = object()


def params_form(
    schema: dict[str, Any],
    values: dict[str, Any],
    on_change: Callable[[str, Any], None],
    *,
    models: list[str] | None = None,
    errors: dict[str, str] | None = None,
) -> None:
    """Fields for every property of ``schema``; ``on_change(name, value)`` with ``MISSING`` when
    a field is emptied (the param is then left out, and its default applies). ``errors`` are
    validation messages by field, shown on the field until it is edited."""
    properties: dict[str, Any] = schema.get("properties", {})
    own = {name: prop for name, prop in properties.items() if name not in COMMON}
    common = {name: prop for name, prop in properties.items() if name in COMMON}
    errors = errors or {}
    for name, prop in own.items():
        box = field(name, prop, values.get(name, MISSING), on_change, models=models)
        if name in errors:
            flag(box, errors[name])
    if common:
        with ui.expansion("Retries, timeout, cache", value=bool(errors.keys() & common.keys())
                          ).classes("w-full"):
            for name, prop in common.items():
                box = field(name, prop, values.get(name, MISSING), on_change)
                if name in errors:
                    flag(box, errors[name])


def flag(box: ValueElement[Any], message: str) -> None:
    """Show ``message`` as the field's error (Quasar's own error line) until its value changes."""
    box.props["error"] = True
    box.props["error-message"] = message

    def clear() -> None:
        box.props.pop("error", None)
        box.props.pop("error-message", None)

    box.on_value_change(clear)


def field(
    name: str,
    prop: dict[str, Any],
    value: Any,
    on_change: Callable[[str, Any], None],
    *,
    models: list[str] | None = None,
) -> ValueElement[Any]:
    label = name
    hint = prop.get("description", "")
    default = prop.get("default", MISSING)
    shown = value if value is not MISSING else (default if default is not MISSING else None)
    kind = prop.get("type")
    if name == "model" and models:
        return ui.select(
            models, label=label, value=shown if shown in models else None,
            on_change=lambda e: on_change(name, e.value or MISSING),
        ).classes("w-full").props(f'data-param="{name}"')
    if "enum" in prop:
        return ui.select(
            list(prop["enum"]), label=label, value=shown,
            on_change=lambda e: on_change(name, e.value),
        ).classes("w-full").props(f'data-param="{name}"')
    if kind == "boolean":
        return ui.switch(
            label, value=bool(shown), on_change=lambda e: on_change(name, e.value)
        ).props(f'data-param="{name}"')
    if kind in ("number", "integer"):
        return _number(name, prop, shown, on_change)
    if kind == "string" and "anyOf" not in prop:
        element = ui.textarea if name in LONG_TEXT or prop.get("format") else ui.input
        box = element(label, value=shown or "")
        box.classes("w-full").props(f'data-param="{name}"')
        if hint:
            box.tooltip(hint)
        box.on_value_change(lambda e: on_change(name, e.value if e.value != "" else MISSING))
        return box
    return _json_field(name, shown, on_change)


def _number(
    name: str, prop: dict[str, Any], shown: Any, on_change: Callable[[str, Any], None]
) -> ui.number:
    low = prop.get("minimum", prop.get("exclusiveMinimum"))
    high = prop.get("maximum")
    integer = prop.get("type") == "integer"

    def changed(event: Any) -> None:
        if event.value is None or event.value == "":
            on_change(name, MISSING)
            return
        on_change(name, int(event.value) if integer else float(event.value))

    box = ui.number(name, value=shown, min=low, max=high, step=1 if integer else 0.1,
                    format="%d" if integer else None, on_change=changed)
    box.classes("w-full").props(f'data-param="{name}"')
    if low is not None or high is not None:
        shown_low, shown_high = ("…" if v is None else v for v in (low, high))
        box.tooltip(f"from {shown_low} to {shown_high}")
    return box


def _json_field(name: str, shown: Any, on_change: Callable[[str, Any], None]) -> ui.textarea:
    text = json.dumps(shown, indent=2) if shown is not None else ""
    box = ui.textarea(f"{name} (JSON)", value=text).classes("w-full font-mono")
    box.props(f'data-param="{name}"')

    def changed(event: Any) -> None:
        if not event.value.strip():
            box.props(remove="error error-message")
            on_change(name, MISSING)
            return
        try:
            parsed = json.loads(event.value)
        except json.JSONDecodeError as exc:
            box.props(f'error error-message="not JSON: {exc.msg} (line {exc.lineno})"')
            return
        box.props(remove="error error-message")
        on_change(name, parsed)

    box.on_value_change(changed)
    return box


def inputs_form(inputs: list[dict[str, Any]]) -> dict[str, Callable[[], Any]]:
    """A field per workflow input (``{"name", "schema", "default"}``); returns value getters."""
    getters: dict[str, Callable[[], Any]] = {}
    for spec in inputs:
        name, schema = spec["name"], spec.get("schema") or {}
        getters[name] = _input_field(name, schema.get("type"), spec.get("default"))
    return getters


def _input_field(name: str, kind: str | None, default: Any) -> Callable[[], Any]:
    if kind in ("number", "integer"):
        box = ui.number(name, value=default).props(f'data-input="{name}"')

        def number() -> Any:
            if box.value is None:
                return None
            return int(box.value) if kind == "integer" else float(box.value)

        return number
    if kind == "boolean":
        switch = ui.switch(name, value=bool(default)).props(f'data-input="{name}"')
        return lambda: switch.value
    if kind == "string" or kind is None:
        text = ui.textarea(name, value=default if isinstance(default, str) else "")
        text.classes("w-full").props(f'data-input="{name}" autogrow')
        return lambda: text.value
    raw = ui.textarea(f"{name} (JSON)", value=json.dumps(default) if default else "")
    raw.classes("w-full font-mono").props(f'data-input="{name}"')
    return lambda: json.loads(raw.value) if raw.value.strip() else None

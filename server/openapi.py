"""The OpenAPI document as the server behaves (SPEC §18). Litestar writes most of it from the
handlers; this module adds what it leaves out or gets wrong:

- a Struct that refuses unknown fields says so (``additionalProperties: false``);
- what a handler declares in ``opt["openapi"]``: headers it requires although it answers their
  absence itself (``If-Match``: 428), further statuses of its success, and the media types an
  answer takes (an export: one per format);
- security per operation, from the same rule the auth middleware follows (`needs_token`), and
  none at all while the server runs in open local mode;
- ``OPTIONS`` answers ``Allow`` with every method of the path (Litestar's own handler, made
  when the first handler of a path was added, misses those added later).
"""

from __future__ import annotations

import copy
from typing import Any, TypedDict

import msgspec
from litestar import Request
from litestar._openapi.schema_generation.plugins.struct import StructSchemaPlugin
from litestar.openapi.plugins import JsonRenderPlugin, SwaggerRenderPlugin
from litestar.routes import HTTPRoute
from litestar.types import Message, Scope

from server.auth import needs_token

__all__ = ["ExactJson", "ExactStructs", "ExactSwagger", "OpenApiFacts", "allow_every_method"]


class OpenApiFacts(TypedDict, total=False):
    """What a handler tells the document in ``opt={"openapi": {...}}``."""

    required_headers: list[str]  # header parameters it needs, answering their absence itself
    parameters: dict[str, dict[str, Any]]  # schema keywords of parameters, checked by the handler
    statuses: dict[int, str]  # further success statuses, with the same body as the declared one
    # every media type of its success answer, each with its schema (None: the declared one)
    media_types: dict[str, dict[str, Any] | None]


class ExactStructs(StructSchemaPlugin):
    """Litestar's schema of a msgspec Struct, saying whether unknown fields are refused."""

    def to_openapi_schema(self, field_definition: Any, schema_creator: Any) -> Any:
        schema = super().to_openapi_schema(field_definition, schema_creator)
        info = msgspec.inspect.type_info(field_definition.type_)
        if isinstance(info, msgspec.inspect.StructType):
            if info.forbid_unknown_fields:
                schema.additional_properties = False
            _zero_field_bounds(schema, info)
        return schema


_NUMBER_BOUNDS = (
    ("ge", "minimum"),
    ("le", "maximum"),
    ("gt", "exclusive_minimum"),
    ("lt", "exclusive_maximum"),
)


def _zero_field_bounds(schema: Any, info: msgspec.inspect.StructType) -> None:
    """A bound of 0 on a number field (``ge=0``) that Litestar dropped as if it were unset."""
    properties = getattr(schema, "properties", None) or {}
    for field in info.fields:
        prop = properties.get(field.encode_name)
        if prop is None or not hasattr(prop, "minimum"):
            continue
        kinds = (
            field.type.types if isinstance(field.type, msgspec.inspect.UnionType) else (field.type,)
        )
        for kind in kinds:
            if not isinstance(kind, msgspec.inspect.IntType | msgspec.inspect.FloatType):
                continue
            for attribute, keyword in _NUMBER_BOUNDS:
                if getattr(kind, attribute) == 0 and getattr(prop, keyword) is None:
                    setattr(prop, keyword, 0)


def _http_routes(app: Any) -> list[HTTPRoute]:
    return [route for route in app.routes if isinstance(route, HTTPRoute)]


def _any_of(value: Any) -> Any:
    """Litestar writes a union as ``oneOf``; a msgspec union takes a value any member takes
    (``int | float`` takes 0, which both describe)."""
    if isinstance(value, dict):
        return {("anyOf" if key == "oneOf" else key): _any_of(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_any_of(item) for item in value]
    return value


def exact(app: Any, document: dict[str, Any], *, open_mode: bool) -> dict[str, Any]:
    """A copy of Litestar's document with the facts above applied."""
    document = _any_of(document)
    paths: dict[str, Any] = document.get("paths", {})
    for route in _http_routes(app):
        item = paths.get(route.path_format)
        if item is None:
            continue
        for handler in route.route_handlers:
            facts: OpenApiFacts = handler.opt.get("openapi") or OpenApiFacts()
            body = handler.parsed_data_field
            for method in handler.http_methods:
                operation = item.get(method.lower())
                if operation is None:
                    continue
                _apply(operation, facts)
                _zero_bounds(operation, handler)
                if body is not None and body.has_default and "requestBody" in operation:
                    operation["requestBody"]["required"] = False
    for path, item in paths.items():
        for method, operation in item.items():
            if method in ("get", "put", "post", "delete", "patch", "head", "options", "trace"):
                public = open_mode or not needs_token(path)
                operation["security"] = [] if public else [{"bearer": []}]
    document.pop("security", None)
    return document


_BOUNDS = (
    ("ge", "minimum"),
    ("le", "maximum"),
    ("gt", "exclusiveMinimum"),
    ("lt", "exclusiveMaximum"),
    ("min_length", "minLength"),
    ("max_length", "maxLength"),
)


def _zero_bounds(operation: dict[str, Any], handler: Any) -> None:
    """A parameter bound of 0 (``ge=0``) that Litestar dropped as if it were unset."""
    by_name = {p["name"]: p for p in operation.get("parameters", [])}
    for name, field in handler.parsed_fn_signature.parameters.items():
        given = field.kwarg_definition
        if given is None:
            continue
        wire = getattr(given, "query", None) or getattr(given, "header", None) or name
        parameter = by_name.get(wire)
        if parameter is None:
            continue
        for attribute, keyword in _BOUNDS:
            if getattr(given, attribute, None) == 0:
                parameter.setdefault("schema", {}).setdefault(keyword, 0)


def _apply(operation: dict[str, Any], facts: OpenApiFacts) -> None:
    for name in facts.get("required_headers", []):
        for parameter in operation.get("parameters", []):
            if parameter.get("in") == "header" and parameter["name"].lower() == name.lower():
                parameter["required"] = True
                schema = parameter.get("schema", {})
                if "anyOf" in schema:  # `str | None`: absent is answered, null is not a header
                    kinds = [s for s in schema["anyOf"] if s.get("type") != "null"]
                    parameter["schema"] = kinds[0] if len(kinds) == 1 else {"anyOf": kinds}
    for name, keywords in facts.get("parameters", {}).items():
        for parameter in operation.get("parameters", []):
            if parameter["name"] == name:
                parameter.setdefault("schema", {}).update(keywords)
    responses: dict[str, Any] = operation.setdefault("responses", {})
    success = next((code for code in sorted(responses) if code.startswith("2")), None)
    if success is None:
        return
    for status, description in facts.get("statuses", {}).items():
        answer = copy.deepcopy(responses[success])
        answer["description"] = description
        responses.setdefault(str(status), answer)
    media_types = facts.get("media_types")
    if media_types:
        for code, answer in responses.items():
            if code.startswith("2"):
                content: dict[str, Any] = next(iter(answer.get("content", {}).values()), {})
                declared = content.get("schema", {})
                answer["content"] = {
                    media: {"schema": declared if schema is None else schema}
                    for media, schema in media_types.items()
                }


class _Exact:
    """What both render plugins share: the document exact, made once per mode."""

    def _document(self, request: Request[Any, Any, Any], schema: dict[str, Any]) -> dict[str, Any]:
        open_mode = request.app.state.engine.gate.known_open
        cache: dict[bool, dict[str, Any]] = request.app.state.setdefault("exact_openapi", {})
        if open_mode not in cache:
            cache[open_mode] = exact(request.app, schema, open_mode=open_mode)
        return cache[open_mode]


class ExactJson(_Exact, JsonRenderPlugin):
    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        return super().render(request, self._document(request, openapi_schema))


class ExactSwagger(_Exact, SwaggerRenderPlugin):
    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        return super().render(request, self._document(request, openapi_schema))


async def allow_every_method(message: Message, scope: Scope) -> None:
    """A `before_send` hook: the ``Allow`` of an ``OPTIONS`` answer names every method."""
    if message["type"] != "http.response.start" or scope.get("method") != "OPTIONS":
        return
    template = scope.get("path_template")
    app = scope["litestar_app"]
    methods: dict[str, str] | None = app.state.get("allowed_methods")
    if methods is None:
        methods = {
            route.path_format: ", ".join(sorted(route.methods)) for route in _http_routes(app)
        }
        app.state["allowed_methods"] = methods
    allowed = methods.get(template) if isinstance(template, str) else None
    if allowed is None:
        return
    given = list(message.get("headers", []))
    headers = [(key, value) for key, value in given if key.lower() != b"allow"]
    if len(headers) != len(given):
        headers.append((b"allow", allowed.encode()))
        message["headers"] = headers

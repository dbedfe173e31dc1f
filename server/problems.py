"""Every error as RFC 9457 problem details (``application/problem+json``), with the `errors` list
in the validation shape of SPEC §2: ``{"code", "message", "node", "port", "path"}``."""

from __future__ import annotations

import re
from typing import Any

import msgspec
import structlog
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi.datastructures import ResponseSpec
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from litestar.types import ExceptionHandlersMap

from engine.documents.issues import pointer
from engine.errors import (
    AnswerInvalid,
    BatchInputsInvalid,
    Conflict,
    InputsInvalid,
    NodeloomError,
    NotFound,
    WorkflowInvalid,
)
from engine.settings import SettingInvalid
from nodes.paths import PathOutsideWorkspace

log = structlog.get_logger("nodeloom.api")

PROBLEM_JSON = "application/problem+json"
TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    412: "Precondition Failed",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    428: "Precondition Required",
    500: "Internal Server Error",
}


class ErrorItem(msgspec.Struct):
    """One problem with the request, in the shape of a workflow validation issue."""

    code: str
    message: str
    node: str | None = None
    port: str | None = None
    path: str | None = None


class Problem(msgspec.Struct):
    """RFC 9457 problem details."""

    status: int
    title: str
    detail: str
    type: str = "about:blank"
    instance: str | None = None
    errors: list[ErrorItem] = []


class ApiError(HTTPException):
    """An HTTP error of the API's own, with its `errors` list."""

    def __init__(
        self,
        status_code: int,
        detail: str,
        *,
        errors: list[ErrorItem] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail=detail, status_code=status_code, headers=headers)
        self.errors = errors or []


def problem_response(
    request: Request[Any, Any, Any],
    status: int,
    detail: str,
    errors: list[ErrorItem] | None = None,
    headers: dict[str, str] | None = None,
) -> Response[Problem]:
    problem = Problem(
        status=status,
        title=TITLES.get(status, "Error"),
        detail=detail,
        instance=request.url.path,
        errors=errors or [],
    )
    return Response(problem, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _pointer(key: str) -> str:
    """Litestar's ``nodes.0.id`` or ``nodes[0].id`` as the JSON pointer ``/nodes/0/id``."""
    parts = [part for part in re.split(r"[.\[\]]+", key) if part]
    return pointer(*parts) if parts else ""


def _validation_errors(exc: ValidationException) -> list[ErrorItem]:
    items = []
    for entry in exc.extra if isinstance(exc.extra, list) else []:
        if not isinstance(entry, dict):
            continue
        key, source = str(entry.get("key", "")), entry.get("source")
        if source == "body" or key == "data":
            key = key.removeprefix("data").lstrip(".")
        message = str(entry.get("message", "invalid value"))
        if source in ("query", "path", "header", "cookie") and key:
            message = f"{source} parameter {key!r}: {message}"
            path = None
        else:
            path = _pointer(key) if key else ""
            unknown = re.match(r"Object contains unknown field `([^`]+)`", message)
            if unknown:
                path += pointer(unknown.group(1))
            if path:
                message = f"{message} at {path}"
        items.append(ErrorItem("invalid_request", message, path=path))
    return items


def http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Problem]:
    status = exc.status_code
    if isinstance(exc, ApiError):
        return problem_response(request, status, exc.detail, exc.errors, exc.headers)
    errors = _validation_errors(exc) if isinstance(exc, ValidationException) else []
    detail = exc.detail
    if status == 413:
        detail = "the request body is larger than the server accepts (NODELOOM_MAX_BODY_BYTES)"
    elif status == 400 and detail.startswith(("JSON is malformed", "Input data was truncated")):
        detail = f"the request body is not valid JSON: {detail}"
        errors = [ErrorItem("invalid_json", detail, path="")]
    elif status >= 500:
        log.error("server error", status=status, detail=detail, path=request.url.path)
        detail = "the server failed to handle the request"
    return problem_response(request, status, detail, errors, exc.headers)


def nodeloom_error(request: Request[Any, Any, Any], exc: NodeloomError) -> Response[Problem]:
    """Engine errors: each with its status and, where it has them, its issues."""
    if isinstance(exc, WorkflowInvalid):
        errors = [ErrorItem(**msgspec.structs.asdict(issue)) for issue in exc.issues]
        return problem_response(request, 422, exc.detail.splitlines()[0], errors)
    if isinstance(exc, BatchInputsInvalid):
        errors = [
            ErrorItem("invalid_inputs", why, path=f"/inputs/{position}")
            for position, why in exc.invalid
        ]
        return problem_response(request, 422, exc.detail, errors)
    if isinstance(exc, InputsInvalid):
        errors = [ErrorItem("invalid_inputs", part, path="/inputs") for part in _parts(exc)]
        return problem_response(request, 422, f"invalid inputs: {exc.detail}", errors)
    if isinstance(exc, AnswerInvalid):
        errors = [ErrorItem("invalid_answer", exc.detail, path="/answer")]
        return problem_response(request, 422, exc.detail, errors)
    if isinstance(exc, PathOutsideWorkspace):
        errors = [ErrorItem("path_outside_workspace", exc.detail, path="/path")]
        return problem_response(request, 400, exc.detail, errors)
    if isinstance(exc, NotFound):
        return problem_response(request, 404, exc.detail)
    if isinstance(exc, Conflict):
        return problem_response(request, 409, exc.detail)
    if isinstance(exc, SettingInvalid | ValueError):
        return problem_response(request, 400, exc.detail)
    log.error("engine error", error=exc.detail, error_type=type(exc).__name__)
    return problem_response(request, HTTP_500_INTERNAL_SERVER_ERROR, exc.detail)


def _parts(exc: InputsInvalid) -> list[str]:
    return [part for part in exc.detail.split("; ") if part] or [exc.detail]


def unexpected_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Problem]:
    log.exception("unhandled error", path=request.url.path, error_type=type(exc).__name__)
    return problem_response(
        request, HTTP_500_INTERNAL_SERVER_ERROR, "the server failed to handle the request"
    )


ALWAYS = (400, 401)  # a bad parameter or body; a missing token


def documented(*statuses: int) -> dict[int, ResponseSpec]:
    """OpenAPI entries for the problem responses a handler may give (and 400, 401)."""
    return {
        status: ResponseSpec(
            Problem,
            generate_examples=False,
            description=TITLES.get(status, "Error"),
            media_type=PROBLEM_JSON,
        )
        for status in sorted({*ALWAYS, *statuses})
    }


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    HTTPException: http_error,
    NodeloomError: nodeloom_error,
    Exception: unexpected_error,
}

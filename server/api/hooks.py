"""Webhooks (SPEC §16): ``/api/workflows/{id}/hooks`` makes, lists, rotates and deletes them;
``POST /hooks/{hook_id}`` with a signed JSON body starts a run, as the hook's owner. The
signature is ``X-Nodeloom-Signature: sha256=<hex HMAC-SHA256 of the raw body>``."""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, delete, get, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, FromQuery, HeaderParameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_202_ACCEPTED

from engine.records import RunRecord
from engine.storage.webhooks import Hook, hook_url
from server.api.deps import EngineDep, PrincipalDep
from server.problems import ApiError, ErrorItem, documented

SIGNATURE_HEADER = "X-Nodeloom-Signature"
SIGNATURE_PREFIX = "sha256="


class NewHook(msgspec.Struct, kw_only=True):
    """A hook with its secret: shown only when it is made or rotated."""

    id: str
    url: str
    secret: str


class HookPage(msgspec.Struct, kw_only=True):
    items: list[Hook]


class HookStarted(msgspec.Struct, kw_only=True):
    run_id: str


def signature(secret: str, body: bytes) -> str:
    """The header value a caller sends: ``sha256=`` and the hex HMAC-SHA256 of ``body``."""
    return SIGNATURE_PREFIX + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class HookController(Controller):
    path = "/api/workflows/{workflow_id:str}/hooks"
    tags = ["webhooks"]  # noqa: RUF012

    @post(
        "/",
        status_code=HTTP_201_CREATED,
        summary="Make a webhook that starts runs of the workflow; its secret is shown once",
        responses=documented(404),
    )
    async def create(
        self, engine: EngineDep, principal: PrincipalDep, workflow_id: FromPath[str]
    ) -> NewHook:
        await engine.workflows.current_version(workflow_id, owner_id=principal.owner_id)
        hook, secret = await engine.hooks.create(workflow_id, owner_id=principal.owner_id)
        return NewHook(id=hook.id, url=hook.url, secret=secret)

    @get("/", summary="The workflow's webhooks (without their secrets)", responses=documented(404))
    async def list_hooks(
        self, engine: EngineDep, principal: PrincipalDep, workflow_id: FromPath[str]
    ) -> HookPage:
        await engine.workflows.current_version(workflow_id, owner_id=principal.owner_id)
        return HookPage(items=await engine.hooks.of_workflow(workflow_id))

    @post(
        "/{hook_id:str}/rotate",
        status_code=HTTP_200_OK,
        summary="Give the webhook a new secret (shown once); the old one stops working",
        responses=documented(404),
    )
    async def rotate(
        self,
        engine: EngineDep,
        principal: PrincipalDep,
        workflow_id: FromPath[str],
        hook_id: FromPath[str],
    ) -> NewHook:
        await engine.workflows.current_version(workflow_id, owner_id=principal.owner_id)
        hook, secret = await engine.hooks.rotate(workflow_id, hook_id)
        return NewHook(id=hook.id, url=hook.url, secret=secret)

    @delete("/{hook_id:str}", summary="Delete a webhook", responses=documented(404))
    async def remove(
        self,
        engine: EngineDep,
        principal: PrincipalDep,
        workflow_id: FromPath[str],
        hook_id: FromPath[str],
    ) -> None:
        await engine.workflows.current_version(workflow_id, owner_id=principal.owner_id)
        await engine.hooks.delete(workflow_id, hook_id)


class HookReceiver(Controller):
    path = "/hooks"
    tags = ["webhooks"]  # noqa: RUF012
    security = [{}]  # noqa: RUF012 - no bearer token: the signature says who may call

    @post(
        "/{hook_id:str}",
        status_code=HTTP_202_ACCEPTED,
        summary="Start a run: the JSON body's fields are its inputs",
        description=(
            f"The body must be signed: `{SIGNATURE_HEADER}: sha256=<hex HMAC-SHA256 of the raw "
            "body with the hook's secret>`; without a valid signature nothing starts (401). "
            "202 with the run's id; with `wait=true`, 200 with the finished run. Inputs are "
            "checked before anything starts (422)."
        ),
        responses={
            200: ResponseSpec(RunRecord, generate_examples=False, description="The finished run"),
            **documented(404, 422),
        },
    )
    async def receive(
        self,
        request: Request[Any, Any, Any],
        engine: EngineDep,
        hook_id: FromPath[str],
        signed: Annotated[
            str | None,
            HeaderParameter(
                name=SIGNATURE_HEADER, description="sha256=<hex HMAC-SHA256 of the body>"
            ),
        ] = None,
        wait: FromQuery[bool] = False,
    ) -> Response[HookStarted]:
        hook = await engine.hooks.row(hook_id)
        if hook is None:
            raise ApiError(404, f"hook {hook_id} not found")
        body = await request.body()
        if signed is None:
            raise _unsigned(f"a webhook call needs the header {SIGNATURE_HEADER}: sha256=<hex>")
        if not hmac.compare_digest(signature(hook.secret, body).encode(), signed.encode()):
            raise _unsigned(f"the {SIGNATURE_HEADER} does not match the body")
        inputs = _inputs(body)
        record, workflow = await engine.current_workflow(hook.workflow_id, owner_id=hook.owner_id)
        active = await engine.runs.start(
            workflow,
            inputs,
            workflow_id=record.id,
            workflow_version=record.version,
            owner_id=hook.owner_id,
            caller_waits=wait,
            trigger=f"webhook:{hook.id}",
        )
        if wait:
            finished: Any = await active.wait()
            return Response(finished, status_code=HTTP_200_OK)
        return Response(HookStarted(run_id=active.id), status_code=HTTP_202_ACCEPTED)


def _unsigned(detail: str) -> ApiError:
    return ApiError(401, detail, errors=[ErrorItem("invalid_signature", detail)])


def _inputs(body: bytes) -> dict[str, Any]:
    """The run's inputs: the body's fields (an empty body: none)."""
    if not body.strip():
        return {}
    try:
        decoded = msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        detail = f"the body is not JSON: {exc}"
        raise ApiError(422, detail, errors=[ErrorItem("invalid_json", detail, path="")]) from None
    if not isinstance(decoded, dict):
        detail = "the body must be a JSON object: its fields are the run's inputs"
        raise ApiError(422, detail, errors=[ErrorItem("invalid_inputs", detail, path="")])
    return decoded


__all__ = ["HookController", "HookReceiver", "hook_url", "signature"]

"""``/api/workflows``: saved workflows with their versions and the editor's view state."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Response, delete, get, post, put
from litestar.datastructures import ResponseHeader
from litestar.params import (
    Body,
    FromPath,
    HeaderParameter,
    JSONBody,
    Parameter,
    QueryParameter,
)
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_204_NO_CONTENT

from engine.documents.document import Workflow, from_builtins
from engine.documents.graph import analyse
from engine.documents.issues import Issue
from engine.errors import WorkflowInvalid
from engine.records import WorkflowRecord
from server.api.deps import (
    IF_MATCH_PATTERN,
    EngineDep,
    PrincipalDep,
    etag,
    if_match_version,
    paged,
)
from server.api.schemas import (
    MAX_INT,
    Cursor,
    Limit,
    SavedWorkflow,
    Validation,
    VersionItem,
    VersionPage,
    ViewState,
    WorkflowPage,
    WorkflowSummary,
)
from server.openapi import OpenApiFacts
from server.problems import ErrorItem, documented
from server.state import Engine

ETAG_HEADER = ResponseHeader(
    name="ETag", description='The workflow version, as "<version>"', documentation_only=True
)
Document = Annotated[
    dict[str, Any],
    Body(description="A workflow document (schema_version 1), valid or not"),
]


# What a document must get right to be saved at all (SPEC §2 "Validation"): it decodes and
# its ids are valid and unique. Every other issue is a draft's, saved and answered.
REFUSED_ON_SAVE = frozenset({"invalid_document", "invalid_id", "duplicate_node_id"})


async def issues_of(
    engine: Engine, workflow: Workflow, owner_id: str | None, workflow_id: str | None = None
) -> list[Issue]:
    """Every issue of the workflow, with the saved workflows it runs as bodies."""
    try:
        resolved = await engine.runs.with_saved_bodies(
            workflow, owner_id=owner_id, workflow_id=workflow_id
        )
    except WorkflowInvalid as exc:  # a body that cannot be found or runs itself
        return list(exc.issues)
    return analyse(resolved, engine.registry, engine.runs.check_context)[1]


async def draft_issues(
    engine: Engine, workflow: Workflow, owner_id: str | None, workflow_id: str | None = None
) -> list[ErrorItem]:
    """The issues a saved draft answers with; `WorkflowInvalid` (nothing saved) when an id is
    bad or repeated."""
    issues = await issues_of(engine, workflow, owner_id, workflow_id)
    if any(issue.code in REFUSED_ON_SAVE for issue in issues):
        raise WorkflowInvalid([issue for issue in issues if issue.code in REFUSED_ON_SAVE])
    return [ErrorItem(**msgspec.structs.asdict(issue)) for issue in issues]


def with_etag(
    record: WorkflowRecord, issues: list[ErrorItem], status: int = HTTP_200_OK
) -> Response[SavedWorkflow]:
    saved = SavedWorkflow(**msgspec.structs.asdict(record), issues=issues)
    return Response(saved, status_code=status, headers={"ETag": etag(record.version)})


class WorkflowController(Controller):
    path = "/api/workflows"
    tags = ["workflows"]  # noqa: RUF012

    @post(
        "/validate",
        status_code=HTTP_200_OK,
        summary="Validate a workflow document",
        description="Every problem with the document, each with its node, port and JSON pointer.",
        responses=documented(),
    )
    async def validate(
        self, engine: EngineDep, principal: PrincipalDep, data: Document
    ) -> Validation:
        try:
            issues = await issues_of(engine, from_builtins(data), principal.owner_id)
        except WorkflowInvalid as exc:  # it does not decode
            issues = list(exc.issues)
        return Validation(
            valid=not issues,
            errors=[ErrorItem(**msgspec.structs.asdict(issue)) for issue in issues],
        )

    @post(
        "/",
        status_code=HTTP_201_CREATED,
        summary="Save a new workflow (a draft with issues too: they are answered)",
        response_headers=[ETAG_HEADER],
        responses=documented(422),
    )
    async def create(
        self, engine: EngineDep, principal: PrincipalDep, data: JSONBody[Workflow]
    ) -> Response[SavedWorkflow]:
        issues = await draft_issues(engine, data, principal.owner_id)
        record = await engine.workflows.create_workflow(data, owner_id=principal.owner_id)
        return with_etag(record, issues, HTTP_201_CREATED)

    @get(
        "/",
        summary="List workflows, most recently saved first",
        description="Each with its description, tags, node count and last run; `q` searches "
        "names and descriptions, `tag` keeps those with that tag.",
        responses=documented(),
    )
    async def list_workflows(
        self,
        *,
        engine: EngineDep,
        principal: PrincipalDep,
        limit: Limit = 50,
        cursor: Cursor = None,
        q: Annotated[
            str | None,
            QueryParameter(max_length=200, description="Words in the name or description"),
        ] = None,
        tag: Annotated[
            str | None, QueryParameter(max_length=200, description="A tag the workflow has")
        ] = None,
    ) -> WorkflowPage:
        page = await paged(
            lambda: engine.workflows.workflow_summaries(
                owner_id=principal.owner_id, limit=limit, cursor=cursor, search=q, tag=tag
            )
        )
        return WorkflowPage(
            items=msgspec.convert(page.items, list[WorkflowSummary]),
            next_cursor=page.next_cursor,
        )

    @get(
        "/{workflow_id:str}",
        summary="Read a workflow (its ETag is its version)",
        response_headers=[ETAG_HEADER],
        responses=documented(404),
    )
    async def read(
        self, engine: EngineDep, principal: PrincipalDep, workflow_id: FromPath[str]
    ) -> Response[WorkflowRecord]:
        record = await engine.workflows.get_workflow(workflow_id, owner_id=principal.owner_id)
        return Response(record, headers={"ETag": etag(record.version)})

    @put(
        "/{workflow_id:str}",
        summary="Save a new version (If-Match: the version it replaces); answers its issues",
        response_headers=[ETAG_HEADER],
        responses=documented(404, 409, 422, 428),
        opt={
            "openapi": OpenApiFacts(
                required_headers=["If-Match"],
                parameters={"If-Match": {"pattern": IF_MATCH_PATTERN}},
            )
        },
    )
    async def save(
        self,
        engine: EngineDep,
        principal: PrincipalDep,
        workflow_id: FromPath[str],
        data: JSONBody[Workflow],
        if_match: Annotated[
            str | None,
            HeaderParameter(
                name="If-Match",
                description='The version being replaced, e.g. "3"',
                pattern=IF_MATCH_PATTERN,
            ),
        ] = None,
    ) -> Response[SavedWorkflow]:
        expected = if_match_version(if_match)
        issues = await draft_issues(engine, data, principal.owner_id, workflow_id)
        record = await engine.workflows.save_workflow(
            workflow_id, data, expected_version=expected, owner_id=principal.owner_id
        )
        return with_etag(record, issues)

    @delete(
        "/{workflow_id:str}",
        status_code=HTTP_204_NO_CONTENT,
        summary="Delete a workflow, its versions and its runs",
        responses=documented(404),
    )
    async def remove(
        self, engine: EngineDep, principal: PrincipalDep, workflow_id: FromPath[str]
    ) -> None:
        await engine.workflows.delete_workflow(workflow_id, owner_id=principal.owner_id)

    @get(
        "/{workflow_id:str}/versions",
        summary="Version history, newest first",
        responses=documented(404),
    )
    async def versions(
        self,
        engine: EngineDep,
        principal: PrincipalDep,
        workflow_id: FromPath[str],
        limit: Limit = 50,
        cursor: Annotated[
            int | None,
            Parameter(description="The last version of the previous page", ge=1, le=MAX_INT),
        ] = None,
    ) -> VersionPage:
        found = await engine.workflows.workflow_versions(workflow_id, owner_id=principal.owner_id)
        items = [item for item in found if cursor is None or item["version"] < cursor]
        more = len(items) > limit
        items = items[:limit]
        return VersionPage(
            items=msgspec.convert(items, list[VersionItem]),
            next_cursor=str(items[-1]["version"]) if more else None,
        )

    @get(
        "/{workflow_id:str}/versions/{version:int}",
        summary="One version of a workflow",
        responses=documented(404),
    )
    async def version(
        self,
        engine: EngineDep,
        principal: PrincipalDep,
        workflow_id: FromPath[str],
        version: Annotated[int, Parameter(ge=1, le=MAX_INT)],
    ) -> WorkflowRecord:
        return await engine.workflows.get_workflow(
            workflow_id, version, owner_id=principal.owner_id
        )

    @get(
        "/{workflow_id:str}/view",
        summary="The editor's view state: zoom, pan, selection, open panels",
        responses=documented(404),
    )
    async def view(
        self, engine: EngineDep, principal: PrincipalDep, workflow_id: FromPath[str]
    ) -> ViewState:
        data = await engine.workflows.view_state(workflow_id, owner_id=principal.owner_id)
        return ViewState() if data is None else msgspec.convert(data, ViewState)

    @put(
        "/{workflow_id:str}/view",
        summary="Save the editor's view state",
        responses=documented(404),
    )
    async def save_view(
        self,
        engine: EngineDep,
        principal: PrincipalDep,
        workflow_id: FromPath[str],
        data: JSONBody[ViewState],
    ) -> ViewState:
        await engine.workflows.save_view_state(
            workflow_id, msgspec.to_builtins(data), owner_id=principal.owner_id
        )
        return data

"""``GET /api/usage``: the caller's runs' tokens and cost, by model, workflow or day."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import msgspec
from litestar import Controller, get
from litestar.params import FromQuery, QueryParameter

from engine.storage.usage import GroupBy, UsageQueries, UsageRow
from server.api.deps import EngineDep, PrincipalDep
from server.problems import ApiError, ErrorItem, documented

DATE = (
    r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
    r"([T ]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,6})?)?"
    r"(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])?)?$"
)
Stamp = Annotated[
    str | None,
    QueryParameter(pattern=DATE, description="An ISO date or time (UTC unless it says)"),
]


class UsageReport(msgspec.Struct, kw_only=True):
    group_by: GroupBy
    rows: list[UsageRow]


class UsageController(Controller):
    path = "/api/usage"
    tags = ["usage"]  # noqa: RUF012

    @get(
        "/",
        summary="Tokens and cost of the caller's runs, by model, workflow or day (UTC)",
        responses=documented(422),
    )
    async def usage(
        self,
        engine: EngineDep,
        principal: PrincipalDep,
        group_by: FromQuery[GroupBy] = "model",
        since: Stamp = None,
        until: Stamp = None,
    ) -> UsageReport:
        """Runs created from ``since`` (inclusive) to ``until`` (exclusive): ISO dates or
        times, UTC unless they say otherwise."""
        rows = await UsageQueries(engine.database).usage(
            group_by,
            owner_id=principal.owner_id,
            since=_utc("since", since),
            until=_utc("until", until),
        )
        return UsageReport(group_by=group_by, rows=rows)


def _utc(name: str, text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        raise ApiError(
            422,
            f"{name}: {text!r} is not a date",
            errors=[ErrorItem("invalid_date", f"not a date: {text!r}", path=name)],
        ) from None
    return stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)

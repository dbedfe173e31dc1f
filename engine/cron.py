"""Cron slots for schedules (SPEC §16): five fields (minute hour day month weekday), or six
with seconds last, read by croniter in an IANA time zone; slots are handed out in UTC."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterError, croniter

from engine.errors import NodeloomError

__all__ = ["ScheduleInvalid", "next_slot", "previous_slot", "zone"]


class ScheduleInvalid(NodeloomError, ValueError):
    """A cron expression or time zone that cannot be used; ``field`` names which."""

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(detail)
        self.field = field


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleInvalid(
            "timezone", f"unknown time zone {name!r} (an IANA name such as Europe/Paris or UTC)"
        ) from None


def _slots(cron: str, timezone: str, at: datetime) -> croniter:
    fields = cron.split()
    if len(fields) not in (5, 6):
        raise ScheduleInvalid(
            "cron",
            f"a cron expression has 5 fields (minute hour day month weekday) or 6 (seconds "
            f"last), got {len(fields)} in {cron!r}",
        )
    try:
        return croniter(" ".join(fields), at.astimezone(zone(timezone)))
    except CroniterError as exc:
        raise ScheduleInvalid("cron", f"invalid cron expression {cron!r}: {exc}") from None


def next_slot(cron: str, timezone: str, after: datetime) -> datetime:
    """The first slot strictly after ``after``, in UTC."""
    found: datetime = _slots(cron, timezone, after).get_next(datetime)
    return found.astimezone(UTC)


def previous_slot(cron: str, timezone: str, before: datetime) -> datetime:
    """The last slot strictly before ``before``, in UTC."""
    found: datetime = _slots(cron, timezone, before).get_prev(datetime)
    return found.astimezone(UTC)

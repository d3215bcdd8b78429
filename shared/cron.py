"""Cron and time-zone checks for schedules, worded for the marketer who wrote them.

One check, `schedule_problems`, is used where a schedule is written (segment validation,
shared/tam/rules.py) and where it becomes a scheduler job (shared/services/sync_schedules.py), so
both refuse exactly the same schedules with the same messages and field paths.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from croniter import croniter

# Unix-cron as Cloud Scheduler reads it: numbers, ranges, steps, lists, and month/day names. croniter
# alone would also take seconds fields, @daily, L, # and H, which Cloud Scheduler rejects.
_NAME = r"(?:[0-9]{1,2}|JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC|SUN|MON|TUE|WED|THU|FRI|SAT)"
_TOKEN = re.compile(rf"^(?:\*|{_NAME}(?:-{_NAME})?)(?:/[0-9]{{1,2}})?$", re.IGNORECASE)
_FIELDS = ("minute", "hour", "day of month", "month", "day of week")

# The shortest time between two builds of a segment: each fire runs one BigQuery build. The default of
# ScheduleSettings.min_interval_minutes (CDP_SCHEDULE_MIN_INTERVAL_MINUTES); 0 turns the check off.
MIN_INTERVAL_MINUTES = 60
# A schedule must fire within this many years: one that never does (30 February) or almost never
# (29 February) is a mistake, and croniter raises on a schedule with no next time.
HORIZON_YEARS = 2
_HORIZON = timedelta(days=365 * HORIZON_YEARS + 1)
# Files of the time-zone database that are not zones: the host's own zone and fallbacks.
_NOT_ZONES = frozenset({"localtime", "posixrules", "Factory"})
_ECHO = 40  # characters of a marketer's value quoted back in a message


def echo(value: str) -> str:
    """A value quoted in a message: its repr, cut short, with lone surrogates escaped so it can be stored."""
    text = repr(value if len(value) <= _ECHO else value[:_ECHO] + "…")
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def cron_error(cron: Any, min_interval_minutes: int = 0, now: datetime | None = None) -> str | None:
    """Why a cron cannot be a schedule, in words a marketer can act on; None when it can.

    `now` is where the search for fires starts (the current time when None).
    """
    if not isinstance(cron, str) or not cron.strip():
        return "must be a cron expression such as '0 6 * * *' (every day at 06:00)"
    fields = cron.split()
    if len(fields) != 5:
        return f"{echo(cron)} has {len(fields)} fields; use five: minute hour day-of-month month day-of-week"
    for name, value in zip(_FIELDS, fields, strict=True):
        if not all(_TOKEN.match(token) for token in value.split(",")):
            return f"{echo(cron)}: the {name} field {echo(value)} is not valid unix-cron"
    if not croniter.is_valid(cron):
        return f"{echo(cron)} has a value out of range (minute 0-59, hour 0-23, day 1-31, month 1-12, weekday 0-7)"
    start = (now or datetime.now(UTC)).astimezone(UTC).replace(tzinfo=None)
    fires = _fires(cron, start, 64 if min_interval_minutes > 0 else 2)
    if not fires or fires[0] - start > _HORIZON:
        return f"{echo(cron)} never fires within {HORIZON_YEARS} years"
    if len(fires) < 2 or fires[1] - fires[0] > _HORIZON:  # 29 February: whether it is near depends on now
        return f"{echo(cron)} fires less than once every {HORIZON_YEARS} years"
    if min_interval_minutes > 0 and len(fires) > 1:
        gap = min(b - a for a, b in zip(fires, fires[1:], strict=False))
        if gap < timedelta(minutes=min_interval_minutes):
            return (
                f"{echo(cron)} fires every {int(gap.total_seconds() // 60)} minutes; a schedule may fire at most "
                f"once every {min_interval_minutes} minutes"
            )
    return None


def _fires(cron: str, start: datetime, count: int) -> list[datetime]:
    """Up to `count` next fires after start, within the horizon of each other. croniter jumps straight to
    matching times, so a burst such as '*/5 9 1 1 *' shows up within the first dozen however far away."""
    it = croniter(cron, start, max_years_between_matches=HORIZON_YEARS + 1)
    fires: list[datetime] = []
    try:
        for _ in range(count):
            fires.append(it.get_next(datetime))
    except (ValueError, OverflowError):  # CroniterBadDateError: no fire within the years searched
        pass
    return fires


@cache
def _zones() -> frozenset[str]:
    return frozenset(available_timezones()) - _NOT_ZONES


def time_zone_error(name: Any) -> str | None:
    """Why a name is not a time zone schedules can be read in; None when it is (an IANA zone such as
    Asia/Seoul, UTC or Etc/GMT-9; not the database's special files such as localtime or posixrules)."""
    if not isinstance(name, str) or not name:
        return "must be an IANA time zone name such as Asia/Seoul"
    if name not in _zones():
        return f"unknown time zone {echo(name)}; use an IANA name such as Asia/Seoul or UTC"
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return f"unknown time zone {echo(name)}; use an IANA name such as Asia/Seoul or UTC"
    return None


@dataclass(frozen=True)
class ScheduleCheck:
    """A schedule as a document holds it, checked: the cron (as written) and zone, or the problems."""

    cron: str | None = None
    timezone: str | None = None
    problems: list[tuple[str, str]] = field(default_factory=list)  # (field path, message)

    @property
    def first(self) -> str | None:
        """The first problem as `path: message`, or None."""
        return f"{self.problems[0][0]}: {self.problems[0][1]}" if self.problems else None


def check_schedule(
    value: Any, default_time_zone: str, min_interval_minutes: int, now: datetime | None = None
) -> ScheduleCheck:
    """The one schedule check: `{cron, timezone}` or a cron string; a missing or null timezone is the
    default. Every problem is reported, field path first, in the order unknown keys, cron, timezone."""
    if isinstance(value, str):
        value = {"cron": value}
    if not isinstance(value, Mapping):
        return ScheduleCheck(problems=[("schedule", "must be a map {cron, timezone} or a cron string")])
    problems = [
        (f"schedule.{echo(str(key))[1:-1]}", "unknown field; a schedule has cron and timezone")
        for key in value
        if key not in ("cron", "timezone")
    ]
    cron = value.get("cron")
    zone = value.get("timezone")
    zone = default_time_zone if zone is None else zone
    cron_problem = cron_error(cron, min_interval_minutes, now)
    if cron_problem is not None:
        problems.append(("schedule.cron", cron_problem))
    zone_problem = time_zone_error(zone)
    if zone_problem is not None:
        problems.append(("schedule.timezone", zone_problem))
    if problems:
        return ScheduleCheck(problems=problems)
    return ScheduleCheck(str(cron), str(zone))

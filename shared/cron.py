"""Cron and time-zone checks for schedules, worded for the marketer who wrote them.

Used where a schedule is written (segment validation, shared/tam/rules.py) and where it becomes a
scheduler job (shared/services/sync_schedules.py), so both refuse exactly the same schedules.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

# Unix-cron as Cloud Scheduler reads it: numbers, ranges, steps, lists, and month/day names. croniter
# alone would also take seconds fields, @daily, L, # and H, which Cloud Scheduler rejects.
_NAME = r"(?:[0-9]{1,2}|JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC|SUN|MON|TUE|WED|THU|FRI|SAT)"
_TOKEN = re.compile(rf"^(?:\*|{_NAME}(?:-{_NAME})?)(?:/[0-9]{{1,2}})?$", re.IGNORECASE)
_FIELDS = ("minute", "hour", "day of month", "month", "day of week")


def cron_error(cron: Any, min_interval_minutes: int = 0, now: datetime | None = None) -> str | None:
    """Why a cron cannot be a schedule, in words a marketer can act on; None when it can."""
    if not isinstance(cron, str) or not cron.strip():
        return "must be a cron expression such as '0 6 * * *' (every day at 06:00)"
    fields = cron.split()
    if len(fields) != 5:
        return f"{cron!r} has {len(fields)} fields; use five: minute hour day-of-month month day-of-week"
    for name, value in zip(_FIELDS, fields, strict=True):
        if not all(_TOKEN.match(token) for token in value.split(",")):
            return f"{cron!r}: the {name} field {value!r} is not valid unix-cron"
    if not croniter.is_valid(cron):
        return f"{cron!r} has a value out of range (minute 0-59, hour 0-23, day 1-31, month 1-12, weekday 0-7)"
    if min_interval_minutes > 0:
        gap = _shortest_gap(cron, now)
        if gap is None:
            return f"{cron!r} never fires"
        if gap < timedelta(minutes=min_interval_minutes):
            return (
                f"{cron!r} fires every {int(gap.total_seconds() // 60)} minutes; a segment may be built at most "
                f"once every {min_interval_minutes} minutes"
            )
    return None


def _shortest_gap(cron: str, now: datetime | None) -> timedelta | None:
    """The shortest gap among the next fires. croniter jumps straight to matching times, so a burst
    such as '*/5 9 1 1 *' shows up within the first dozen fires however far away it is."""
    it = croniter(cron, now or datetime(2025, 1, 1))
    try:
        fires = [it.get_next(datetime) for _ in range(64)]
    except Exception:  # noqa: BLE001 - croniter raises its own errors for dates that never come
        return None
    return min(b - a for a, b in zip(fires, fires[1:], strict=False))


def time_zone_error(name: Any) -> str | None:
    """Why a name is not a time zone schedules can be read in; None when it is."""
    if not isinstance(name, str) or not name:
        return "must be an IANA time zone name such as Asia/Seoul"
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return f"unknown time zone {name!r}; use an IANA name such as Asia/Seoul or UTC"
    return None

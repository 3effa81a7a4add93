"""Budget period arithmetic: calendar periods in the budget's IANA timezone, as UTC bounds.

A monthly budget in Europe/Paris resets at Paris midnight on the 1st, whatever the
offset that day (DST included): bounds are built as local wall-clock midnights and only
then converted to UTC.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo


def _local_midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)


def _add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def period_bounds(period: str, timezone: str, at: datetime) -> tuple[datetime, datetime]:
    """The ``[start, end)`` UTC instants of the ``period`` that contains ``at``."""
    zone = ZoneInfo(timezone)
    local = at.astimezone(zone).date()
    if period == "daily":
        first, after = local, local + timedelta(days=1)
    elif period == "weekly":  # ISO weeks: Monday to Monday
        first = local - timedelta(days=local.weekday())
        after = first + timedelta(days=7)
    elif period == "monthly":
        first = local.replace(day=1)
        after = _add_months(first, 1)
    elif period == "quarterly":
        first = date(local.year, (local.month - 1) // 3 * 3 + 1, 1)
        after = _add_months(first, 3)
    elif period == "yearly":
        first, after = date(local.year, 1, 1), date(local.year + 1, 1, 1)
    else:
        raise ValueError(f"unknown budget period {period!r}")
    return _local_midnight(first, zone), _local_midnight(after, zone)

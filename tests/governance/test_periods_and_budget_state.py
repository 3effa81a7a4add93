"""Period arithmetic and the budget-state rules, with an explicit ``now`` throughout."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from governance import budget_state as bs
from governance.periods import period_bounds


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


@pytest.mark.parametrize(
    ("period", "zone", "at", "start", "end"),
    [
        ("daily", "UTC", utc(2026, 12, 4, 21, 0), utc(2026, 12, 4), utc(2026, 12, 5)),
        # Paris midnight is 23:00 UTC in winter and 22:00 UTC in summer.
        ("daily", "Europe/Paris", utc(2026, 12, 4, 23, 30), utc(2026, 12, 4, 23), utc(2026, 12, 5, 23)),
        # The day DST starts has 23 hours, the day it ends 25.
        ("daily", "Europe/Paris", utc(2026, 3, 29, 12), utc(2026, 3, 28, 23), utc(2026, 3, 29, 22)),
        ("daily", "Europe/Paris", utc(2026, 10, 25, 12), utc(2026, 10, 24, 22), utc(2026, 10, 25, 23)),
        # ISO weeks run Monday to Monday, across a year end too.
        ("weekly", "UTC", utc(2026, 12, 4), utc(2026, 11, 30), utc(2026, 12, 7)),
        ("weekly", "UTC", utc(2027, 1, 1, 12), utc(2026, 12, 28), utc(2027, 1, 4)),
        # A Paris monthly budget spanning the March DST change: +01:00 at the start, +02:00 at the end.
        ("monthly", "Europe/Paris", utc(2026, 3, 15), utc(2026, 2, 28, 23), utc(2026, 3, 31, 22)),
        ("monthly", "Europe/Paris", utc(2026, 10, 31, 22, 30), utc(2026, 9, 30, 22), utc(2026, 10, 31, 23)),
        ("monthly", "Europe/Paris", utc(2026, 10, 31, 23, 0), utc(2026, 10, 31, 23), utc(2026, 11, 30, 23)),
        # Leap years: February 2028 has 29 days, 2100 (not a leap year) 28.
        ("monthly", "UTC", utc(2028, 2, 29, 23, 59), utc(2028, 2, 1), utc(2028, 3, 1)),
        ("daily", "UTC", utc(2028, 2, 29, 1), utc(2028, 2, 29), utc(2028, 3, 1)),
        ("monthly", "UTC", utc(2100, 2, 28, 12), utc(2100, 2, 1), utc(2100, 3, 1)),
        ("quarterly", "UTC", utc(2026, 12, 31, 23, 59), utc(2026, 10, 1), utc(2027, 1, 1)),
        ("quarterly", "America/New_York", utc(2027, 1, 1, 2), utc(2026, 10, 1, 4), utc(2027, 1, 1, 5)),
        ("yearly", "UTC", utc(2026, 12, 31, 23, 59, 59), utc(2026, 1, 1), utc(2027, 1, 1)),
        # Auckland's new year begins while it is still 31 December in UTC.
        ("yearly", "Pacific/Auckland", utc(2026, 12, 31, 11, 30), utc(2026, 12, 31, 11), utc(2027, 12, 31, 11)),
        # Half-hour offsets give bounds on the half hour.
        ("daily", "Asia/Kolkata", utc(2026, 12, 4, 19), utc(2026, 12, 4, 18, 30), utc(2026, 12, 5, 18, 30)),
    ],
)
def test_period_bounds(period, zone, at, start, end):
    assert period_bounds(period, zone, at) == (start, end)


@pytest.mark.parametrize("period", ["daily", "weekly", "monthly", "quarterly", "yearly"])
def test_periods_tile_time_without_gaps_or_overlaps(period):
    at = utc(2026, 1, 1)
    start, end = period_bounds(period, "Europe/Paris", at)
    for _ in range(60):
        next_start, next_end = period_bounds(period, "Europe/Paris", end)
        assert next_start == end and next_end > next_start
        # Every instant inside a period maps back to it.
        assert period_bounds(period, "Europe/Paris", end - timedelta(microseconds=1)) == (start, end)
        start, end = next_start, next_end


def test_an_unknown_period_is_refused():
    with pytest.raises(ValueError, match="fortnightly"):
        period_bounds("fortnightly", "UTC", utc(2026, 1, 1))


@pytest.mark.parametrize(
    ("before", "after", "crossed"),
    [
        (Decimal("0"), Decimal("49.99"), []),
        (Decimal("0"), Decimal("50"), [50]),
        (Decimal("49"), Decimal("95"), [50, 80, 90]),  # one jump crosses several
        (Decimal("50"), Decimal("79"), []),  # 50 was crossed before
        (Decimal("85"), Decimal("120"), [90]),
        (None, Decimal("85"), [50, 80]),  # re-evaluation: every reached threshold
    ],
)
def test_crossed_thresholds(before, after, crossed):
    assert bs.crossed_thresholds(before, after, Decimal("100"), [50, 80, 90]) == crossed


@pytest.mark.parametrize(
    ("spent", "state"),
    [(Decimal("0"), "ok"), (Decimal("49.99"), "ok"), (Decimal("50"), "warning"), (Decimal("100"), "exceeded")],
)
def test_state(spent, state):
    assert bs.state_of(spent, Decimal("100"), [80, 50]) == state


def test_no_thresholds_means_ok_until_exceeded():
    assert bs.state_of(Decimal("99.99"), Decimal("100"), []) == "ok"


def test_forecast_projects_the_burn_rate_so_far():
    start, end = utc(2026, 12, 1), utc(2027, 1, 1)  # 31 days
    now = start + timedelta(days=10)
    assert bs.forecast_spend(Decimal("100"), start, end, now) == Decimal("310.0000")
    # It reaches 200 after 20 days at 10 a day.
    assert bs.projected_exhaustion(Decimal("100"), Decimal("200"), start, end, now) == start + timedelta(days=20)
    # 400 is not reached this period.
    assert bs.projected_exhaustion(Decimal("100"), Decimal("400"), start, end, now) is None


def test_a_tiny_spend_against_a_huge_amount_projects_no_date():
    start, end = utc(2026, 12, 1), utc(2027, 1, 1)
    now = start + timedelta(days=3)
    limit = Decimal("9999999999999999.9999")
    assert bs.projected_exhaustion(Decimal("0.0000000001"), limit, start, end, now) is None


def test_forecast_early_in_a_period_is_just_the_spend():
    start, end = utc(2026, 12, 1), utc(2027, 1, 1)
    assert bs.forecast_spend(Decimal("5"), start, end, start + timedelta(seconds=30)) == Decimal("5")
    assert bs.forecast_spend(Decimal("5"), start, end, end + timedelta(days=1)) == Decimal("5")


def test_forecast_alerts_wait_for_part_of_the_period():
    start, end = utc(2026, 12, 1), utc(2026, 12, 11)  # ten days
    assert not bs.forecast_is_due(start, end, start + timedelta(hours=23), min_elapsed_percent=10)
    assert bs.forecast_is_due(start, end, start + timedelta(days=1), min_elapsed_percent=10)
    assert not bs.forecast_is_due(start, end, end, min_elapsed_percent=10)


def test_period_status_remaining_never_goes_negative():
    status = bs.period_status(
        spent=Decimal("130"),
        limit=Decimal("100"),
        thresholds=[50],
        start=utc(2026, 12, 1),
        end=utc(2027, 1, 1),
        now=utc(2026, 12, 2),
    )
    assert status.remaining == Decimal("0") and status.percent_used == Decimal("130.00")
    assert status.state == "exceeded" and status.projected_exhaustion_at is None

"""What a budget period's numbers mean: percent used, state, forecast, crossings.

Pure functions of (amount, spent, bounds, now), so every rule is testable with an
explicit ``now`` and shared by the API, the enforcement service and the pages.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

ZERO = Decimal(0)
HUNDRED = Decimal(100)
CENT = Decimal("0.01")
MONEY = Decimal("0.0001")


@dataclass(frozen=True)
class PeriodStatus:
    period_start: datetime
    period_end: datetime
    limit: Decimal
    spent: Decimal
    remaining: Decimal
    percent_used: Decimal
    forecast_period_spend: Decimal
    projected_exhaustion_at: datetime | None
    state: str  # ok, warning or exceeded


def percent_of(spent: Decimal, limit: Decimal) -> Decimal:
    return (spent * HUNDRED / limit).quantize(CENT, rounding=ROUND_HALF_UP)


def is_exceeded(spent: Decimal, limit: Decimal) -> bool:
    """The cap is reached when spend meets it: the next request would go past it."""
    return spent >= limit


def state_of(spent: Decimal, limit: Decimal, thresholds: list[int]) -> str:
    if is_exceeded(spent, limit):
        return "exceeded"
    if thresholds and spent * HUNDRED >= limit * min(thresholds):
        return "warning"
    return "ok"


def forecast_spend(spent: Decimal, start: datetime, end: datetime, now: datetime) -> Decimal:
    """Spend at the period's end if the burn rate so far holds (linear projection)."""
    if now >= end:
        return spent
    elapsed = (now - start).total_seconds()
    if elapsed <= 60:  # a minute in, the rate says nothing yet
        return spent
    length = (end - start).total_seconds()
    return (spent * Decimal(length) / Decimal(elapsed)).quantize(MONEY, rounding=ROUND_HALF_UP)


def projected_exhaustion(
    spent: Decimal, limit: Decimal, start: datetime, end: datetime, now: datetime
) -> datetime | None:
    """When spend reaches ``limit`` at the burn rate so far, if before the period ends."""
    if is_exceeded(spent, limit) or spent <= 0 or now >= end:
        return None
    elapsed = (now - start).total_seconds()
    if elapsed <= 60:
        return None
    seconds_left = (limit - spent) / spent * Decimal(elapsed)
    if seconds_left >= Decimal((end - now).total_seconds()):
        return None  # not this period (and a tiny spend against a huge amount is no date at all)
    return now + timedelta(seconds=float(seconds_left))


def forecast_is_due(start: datetime, end: datetime, now: datetime, *, min_elapsed_percent: int) -> bool:
    """Forecasts only count once enough of the period has passed to have a burn rate."""
    if not start <= now < end:
        return False
    return (now - start) * 100 >= (end - start) * min_elapsed_percent and (now - start) > timedelta(minutes=1)


def crossed_thresholds(before: Decimal | None, after: Decimal, limit: Decimal, thresholds: list[int]) -> list[int]:
    """Soft thresholds at or under ``after`` and above ``before`` (all reached ones when
    ``before`` is None: a re-evaluation after the amount changed)."""
    reached = [t for t in thresholds if after * HUNDRED >= limit * t]
    if before is None:
        return reached
    return [t for t in reached if before * HUNDRED < limit * t]


def period_status(
    *, spent: Decimal, limit: Decimal, thresholds: list[int], start: datetime, end: datetime, now: datetime
) -> PeriodStatus:
    return PeriodStatus(
        period_start=start,
        period_end=end,
        limit=limit,
        spent=spent,
        remaining=max(limit - spent, ZERO).quantize(MONEY, rounding=ROUND_HALF_UP),
        percent_used=percent_of(spent, limit),
        forecast_period_spend=forecast_spend(spent, start, end, now),
        projected_exhaustion_at=projected_exhaustion(spent, limit, start, end, now),
        state=state_of(spent, limit, thresholds),
    )

"""Billing's answers to governance's hooks (governance never imports billing)."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import Q, Sum

from billing.models import UsageEvent, UsageRollup
from governance.models import Budget, BudgetScope

HOUR = timedelta(hours=1)


def _scope_filter(budget: Budget) -> Q:
    if budget.scope_type == BudgetScope.CUSTOMER:
        return Q(customer_id=budget.customer_id)
    if budget.scope_type == BudgetScope.TEAM:
        return Q(team_id=budget.team_id)
    if budget.scope_type == BudgetScope.VIRTUAL_KEY:
        return Q(virtual_key_id=budget.virtual_key_id)
    return Q()


def _ceil_hour(at: datetime) -> datetime:
    floor = at.replace(minute=0, second=0, microsecond=0)
    return floor if floor == at else floor + HOUR


def spend_between(budget: Budget, start: datetime, end: datetime) -> Decimal:
    """USD cost of stored events in the budget's scope over ``[start, end)``: whole
    hours from the hourly rollups, the ragged edges of a zone with a half-hour offset
    (Asia/Kolkata midnight is 18:30 UTC) from the events themselves."""
    scope = _scope_filter(budget)
    first_hour, last_hour = _ceil_hour(start), end.replace(minute=0, second=0, microsecond=0)
    total = Decimal(0)
    if first_hour < last_hour:
        rolled = UsageRollup.objects.filter(scope, bucket__gte=first_hour, bucket__lt=last_hour).aggregate(
            c=Sum("cost")
        )
        total += rolled["c"] or 0
    else:
        first_hour = last_hour = start  # under an hour: all from events
    edges = Q(occurred_at__gte=start, occurred_at__lt=min(first_hour, end)) | Q(
        occurred_at__gte=max(last_hour, start), occurred_at__lt=end
    )
    if first_hour > start or last_hour < end:
        raw = UsageEvent.objects.filter(scope).filter(edges).aggregate(c=Sum("cost"))
        total += raw["c"] or 0
    return total


def on_budget_opened(sender: Any, *, budget: Budget, start: datetime, end: datetime, **kwargs: Any) -> Decimal:
    return spend_between(budget, start, end)

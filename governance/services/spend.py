"""The hook ingest calls, in its own transaction, with the spend of newly stored events.

Each charge is added to the current period of every budget in its chain (key → team →
customer → organization) with SQL increments, so concurrent workers never lose an
update and an event counted once is charged once. Thresholds, alerts and blocking build
on the periods touched: ``governance.services.enforcement.after_charge`` runs in the
same transaction with each period's spend before and after the charge.

Costs arrive in US dollars; a budget in another currency is charged at
``settings.EXCHANGE_RATES``. Budgets track cost (what the gateways' providers charge),
before any customer markup.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import Q
from django.utils import timezone

from bursar.db import prepare_rows
from governance.models import Budget, BudgetPeriod, BudgetScope
from governance.periods import period_bounds
from governance.services.enforcement import PeriodSpend, after_charge


@dataclass(frozen=True)
class SpendCharge:
    occurred_at: datetime
    cost: Decimal
    customer_id: int | None
    team_id: int | None
    virtual_key_id: int | None


def _budgets_for(charges: Sequence[SpendCharge]) -> list[Budget]:
    customers = {c.customer_id for c in charges if c.customer_id}
    teams = {c.team_id for c in charges if c.team_id}
    keys = {c.virtual_key_id for c in charges if c.virtual_key_id}
    return list(
        Budget.objects.filter(
            Q(scope_type=BudgetScope.ORGANIZATION)
            | Q(customer_id__in=customers)
            | Q(team_id__in=teams)
            | Q(virtual_key_id__in=keys)
        )
    )


def to_budget_currency(amount_usd: Decimal, currency: str) -> Decimal:
    """``amount_usd`` in ``currency`` at the configured rate (create_budget refuses a
    currency without one, so a missing rate here means the setting was removed)."""
    rate = settings.EXCHANGE_RATES.get(currency)
    if rate is None:
        raise ValueError(f"no exchange rate for {currency}: add it to EXCHANGE_RATES")
    return amount_usd if currency == "USD" else amount_usd * rate


def _applies(budget: Budget, charge: SpendCharge) -> bool:
    if budget.scope_type == BudgetScope.ORGANIZATION:
        return True
    if budget.scope_type == BudgetScope.CUSTOMER:
        return budget.customer_id == charge.customer_id
    if budget.scope_type == BudgetScope.TEAM:
        return budget.team_id == charge.team_id
    return budget.virtual_key_id == charge.virtual_key_id


def charge_spend(*, charges: Sequence[SpendCharge], now: datetime | None = None) -> int:
    """Add ``charges`` to the periods they fall in, then enforce the budgets touched;
    returns the number of periods touched.

    Side effects: upserts BudgetPeriod rows (one statement per 5,000), incrementing
    ``spent``; whatever ``after_charge`` does (alerts, blocked keys).
    """
    charges = [charge for charge in charges if charge.cost]
    if not charges:
        return 0
    budgets = _budgets_for(charges)
    totals: dict[tuple[int, datetime, datetime], Decimal] = defaultdict(Decimal)
    for budget in budgets:
        for charge in charges:
            if _applies(budget, charge):
                start, end = period_bounds(budget.period, budget.timezone, charge.occurred_at)
                totals[(budget.pk, start, end)] += to_budget_currency(charge.cost, budget.currency)
    if not totals:
        return 0
    table = BudgetPeriod._meta.db_table
    rows = sorted(totals.items())  # a fixed order: concurrent workers lock rows alike
    prepared = prepare_rows(BudgetPeriod, ["budget", "start", "end", "spent"], [[*key, spent] for key, spent in rows])
    period_ids: list[int] = []
    with connection.cursor() as cursor:
        for first in range(0, len(prepared), 5000):  # within every backend's parameter limit
            part = prepared[first : first + 5000]
            params: list[Any] = [value for row in part for value in row]
            cursor.execute(
                f'INSERT INTO {table} (budget_id, start, "end", spent) '  # noqa: S608 - fixed names
                f"VALUES {', '.join(['(%s, %s, %s, %s)'] * len(part))} "
                f"ON CONFLICT (budget_id, start) DO UPDATE SET spent = {table}.spent + excluded.spent "
                "RETURNING id",
                params,
            )
            period_ids.extend(row[0] for row in cursor.fetchall())
    # Read back through the ORM (typed values; this transaction holds the rows' locks, so
    # ``spent`` is exactly the value after this charge).
    after = {
        (row["budget_id"], row["start"]): (row["id"], row["spent"])
        for row in BudgetPeriod.objects.filter(pk__in=period_ids).values("id", "budget_id", "start", "spent")
    }
    changes = []
    for (budget_id, start, end), delta in rows:
        period_id, spent = after[(budget_id, start)]
        changes.append(PeriodSpend(budget_id, period_id, start, end, before=spent - delta, after=spent))
    after_charge(changes, budgets={budget.pk: budget for budget in budgets}, now=now or timezone.now())
    return len(rows)

"""Writes for budgets: create, change, override, delete, each enforced at once.

Spend itself is charged by ``governance.services.spend`` from the ingest transaction;
thresholds, blocks and alerts follow in ``governance.services.enforcement``.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from django.conf import settings
from django.db import connection, transaction

from bursar.db import prepare_rows
from bursar.errors import InvalidInput
from governance.actors import Actor
from governance.models import Budget, BudgetPeriod
from governance.periods import period_bounds
from governance.services._changes import lock_for_update, save_changes
from governance.services._scopes import scope_kwargs
from governance.services.audit import record_audit, snapshot
from governance.services.enforcement import notify_desired_state_changed, reevaluate_budget, unblock_keys
from governance.signals import budget_opened

BUDGET_FIELDS = (
    "scope_type",
    "customer",
    "team",
    "virtual_key",
    "amount",
    "currency",
    "period",
    "timezone",
    "soft_thresholds",
    "hard_cap",
    "override_amount",
    "override_expires_at",
    "override_reason",
)
# Period rows hold [start, end) bounds and spend in the currency computed from these:
# changing them would leave history that no longer matches, so they are fixed like the scope.
FIXED_FIELDS = ("scope_type", "scope_id", "customer", "team", "virtual_key", "period", "timezone", "currency")


def validate_timezone(name: str) -> str:
    # ZoneInfo also accepts file paths such as "../../etc/passwd"; only IANA names pass.
    if name not in available_timezones():
        raise InvalidInput(f"{name!r} is not an IANA timezone such as Europe/Paris", field="timezone")
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(f"{name!r} is not an IANA timezone such as Europe/Paris", field="timezone") from None
    return name


def normalise_thresholds(values: list[Any]) -> list[int]:
    """Sorted, unique whole percentages between 1 and 100."""
    cleaned: set[int] = set()
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 100:
            raise InvalidInput("each threshold is a whole percentage from 1 to 100", field="soft_thresholds")
        cleaned.add(value)
    return sorted(cleaned)


def validate_currency(currency: str) -> str:
    if currency not in settings.EXCHANGE_RATES:
        known = ", ".join(sorted(settings.EXCHANGE_RATES))
        raise InvalidInput(
            f"spend is priced in USD; a {currency} budget needs a rate in EXCHANGE_RATES (configured: {known})",
            field="currency",
        )
    return currency


@transaction.atomic
def create_budget(
    *,
    actor: Actor,
    scope_type: str,
    scope_id: int | None,
    amount: Decimal,
    currency: str = "USD",
    period: str = "monthly",
    timezone: str = "UTC",
    soft_thresholds: list[int] | None = None,
    hard_cap: bool = True,
    now: datetime,
) -> Budget:
    """Create a budget on the organization, a customer, a team or a virtual key. Its
    current period starts from the spend already made in it (billing answers
    ``budget_opened``), and it is enforced at once: a scope already over a hard cap
    has its keys blocked now, not at the next event.

    Side effects: one Budget row, its current BudgetPeriod, one AuditEntry; alerts and
    blocks as ``reevaluate_budget`` decides.
    """
    if amount <= 0:
        raise InvalidInput("must be greater than zero", field="amount")
    budget = Budget(
        scope_type=scope_type,
        amount=amount,
        currency=validate_currency(currency),
        period=period,
        timezone=validate_timezone(timezone),
        soft_thresholds=normalise_thresholds(soft_thresholds if soft_thresholds is not None else [50, 80]),
        hard_cap=hard_cap,
        **scope_kwargs(scope_type, scope_id),
    )
    budget.full_clean()
    budget.save()
    record_audit(
        actor=actor, action="budget.create", instance=budget, before=None, after=snapshot(budget, BUDGET_FIELDS)
    )
    _open_current_period(budget, now=now)
    reevaluate_budget(budget, now=now)
    notify_desired_state_changed(reason=f"budget {budget.pk} created")
    return budget


def _open_current_period(budget: Budget, *, now: datetime) -> None:
    start, end = period_bounds(budget.period, budget.timezone, now)
    spent = Decimal(0)
    for _, amount in budget_opened.send(sender=Budget, budget=budget, start=start, end=end):
        spent += Decimal(amount or 0)
    if spent:
        set_period_spend(budget, start=start, end=end, spent_usd=spent)


def set_period_spend(budget: Budget, *, start: datetime, end: datetime, spent_usd: Decimal) -> None:
    """Open a period with spend already made (a new budget, or a rebuild).

    Side effects: upserts the BudgetPeriod row, adding to whatever was charged since.
    """
    from governance.services.spend import to_budget_currency

    amount = to_budget_currency(spent_usd, budget.currency)
    table = BudgetPeriod._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f'INSERT INTO {table} (budget_id, start, "end", spent) VALUES (%s, %s, %s, %s) '  # noqa: S608 - fixed names
            f"ON CONFLICT (budget_id, start) DO UPDATE SET spent = {table}.spent + excluded.spent",
            prepare_rows(BudgetPeriod, ["budget", "start", "end", "spent"], [[budget.pk, start, end, amount]])[0],
        )


@transaction.atomic
def update_budget(*, actor: Actor, budget: Budget, changes: dict[str, Any], now: datetime) -> Budget:
    """Change a budget's amount, thresholds or cap (scope, period, timezone and currency
    are fixed), and apply it to the current period at once: raising the amount unblocks
    and re-arms thresholds above the new percentage; lowering it can block and fire.

    Side effects: updates the Budget row; one AuditEntry when something changed; alerts,
    blocks and unblocks as ``reevaluate_budget`` decides.
    """
    changes = dict(changes)
    for name in FIXED_FIELDS:
        if name in changes and (name == "scope_id" or changes[name] != getattr(budget, name)):
            raise InvalidInput(
                f"a budget's {name.replace('_id', '')} cannot change (its period history depends on it); "
                "create a new budget instead",
                field=name,
            )
        changes.pop(name, None)
    lock_for_update(budget)
    if "amount" in changes and changes["amount"] <= 0:
        raise InvalidInput("must be greater than zero", field="amount")
    if "soft_thresholds" in changes:
        changes["soft_thresholds"] = normalise_thresholds(changes["soft_thresholds"])
    before = snapshot(budget, BUDGET_FIELDS)
    save_changes(actor=actor, action="budget.update", instance=budget, changes=changes, audited_fields=BUDGET_FIELDS)
    if snapshot(budget, BUDGET_FIELDS) != before:
        reevaluate_budget(budget, now=now)
        notify_desired_state_changed(reason=f"budget {budget.pk} changed")
    return budget


@transaction.atomic
def grant_override(
    *, actor: Actor, budget: Budget, extra_amount: Decimal, expires_at: datetime, reason: str, now: datetime
) -> Budget:
    """Let the scope spend ``extra_amount`` more until ``expires_at`` (replacing any
    earlier override); its keys unblock at once if that brings them under the cap, and
    the cap applies again when it lapses (the minute sweep).

    Side effects: updates the Budget row; one AuditEntry; enforcement as on a raise.
    """
    if extra_amount <= 0:
        raise InvalidInput("must be greater than zero", field="extra_amount")
    if expires_at <= now:
        raise InvalidInput("must be in the future", field="expires_at")
    if not reason.strip():
        raise InvalidInput("say why (it goes to the audit log)", field="reason")
    lock_for_update(budget)
    changes = {"override_amount": extra_amount, "override_expires_at": expires_at, "override_reason": reason.strip()}
    save_changes(actor=actor, action="budget.override", instance=budget, changes=changes, audited_fields=BUDGET_FIELDS)
    reevaluate_budget(budget, now=now)
    notify_desired_state_changed(reason=f"budget {budget.pk} override granted")
    return budget


@transaction.atomic
def clear_override(*, actor: Actor, budget: Budget, now: datetime) -> Budget:
    """End an override now. Side effects: as ``grant_override``."""
    lock_for_update(budget)
    changes = {"override_amount": None, "override_expires_at": None, "override_reason": ""}
    save_changes(
        actor=actor, action="budget.clear_override", instance=budget, changes=changes, audited_fields=BUDGET_FIELDS
    )
    reevaluate_budget(budget, now=now)
    notify_desired_state_changed(reason=f"budget {budget.pk} override ended")
    return budget


@transaction.atomic
def delete_budget(*, actor: Actor, budget: Budget, now: datetime) -> None:
    """Delete a budget with its periods and alerts (the audit log keeps its history);
    keys only it blocked become active again.

    Side effects: deletes the Budget row, its periods, alerts and key links; AuditEntries.
    """
    unblock_keys(budget, now=now, reason="budget deleted")
    notify_desired_state_changed(reason=f"budget {budget.pk} deleted")
    record_audit(
        actor=actor, action="budget.delete", instance=budget, before=snapshot(budget, BUDGET_FIELDS), after=None
    )
    budget.delete()

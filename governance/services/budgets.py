"""Writes for budgets (their spend tracking arrives with the budgets issue)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from django.db import transaction

from bursar.errors import InvalidInput
from governance.actors import Actor
from governance.models import Budget, BudgetScope, Customer, Team, VirtualKey
from governance.services._changes import lock_for_update, save_changes
from governance.services.audit import record_audit, snapshot

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
)
_SCOPE_MODELS: dict[str, type[Customer] | type[Team] | type[VirtualKey]] = {
    BudgetScope.CUSTOMER: Customer,
    BudgetScope.TEAM: Team,
    BudgetScope.VIRTUAL_KEY: VirtualKey,
}


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


def _scope_kwargs(scope_type: str, scope_id: int | None) -> dict[str, Any]:
    if scope_type == BudgetScope.ORGANIZATION:
        if scope_id is not None:
            raise InvalidInput("must be empty for an organization budget", field="scope_id")
        return {}
    model = _SCOPE_MODELS.get(scope_type)
    if model is None:
        raise InvalidInput(f"{scope_type!r} is not a scope", field="scope_type")
    if scope_id is None:
        raise InvalidInput(f"required for a {scope_type} budget", field="scope_id")
    target = model.objects.filter(pk=scope_id).first()
    if target is None:
        raise InvalidInput(f"no {scope_type} with id {scope_id}", field="scope_id")
    return {scope_type: target}


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
) -> Budget:
    """Create a budget on the organization, a customer, a team or a virtual key.

    Side effects: one Budget row, one AuditEntry.
    """
    if amount <= 0:
        raise InvalidInput("must be greater than zero", field="amount")
    budget = Budget(
        scope_type=scope_type,
        amount=amount,
        currency=currency,
        period=period,
        timezone=validate_timezone(timezone),
        soft_thresholds=normalise_thresholds(soft_thresholds if soft_thresholds is not None else [50, 80]),
        hard_cap=hard_cap,
        **_scope_kwargs(scope_type, scope_id),
    )
    budget.full_clean()
    budget.save()
    record_audit(
        actor=actor, action="budget.create", instance=budget, before=None, after=snapshot(budget, BUDGET_FIELDS)
    )
    return budget


@transaction.atomic
def update_budget(*, actor: Actor, budget: Budget, changes: dict[str, Any]) -> Budget:
    """Change a budget's amount, period, timezone, thresholds or cap (its scope is fixed).

    Side effects: updates the Budget row; one AuditEntry when something changed.
    """
    fixed = sorted({"scope_type", "scope_id", "customer", "team", "virtual_key"} & set(changes))
    if fixed:
        raise InvalidInput("a budget's scope cannot change; create a new budget instead", field=fixed[0])
    lock_for_update(budget)
    changes = dict(changes)
    if "amount" in changes and changes["amount"] <= 0:
        raise InvalidInput("must be greater than zero", field="amount")
    if "timezone" in changes:
        validate_timezone(changes["timezone"])
    if "soft_thresholds" in changes:
        changes["soft_thresholds"] = normalise_thresholds(changes["soft_thresholds"])
    save_changes(actor=actor, action="budget.update", instance=budget, changes=changes, audited_fields=BUDGET_FIELDS)
    return budget


@transaction.atomic
def delete_budget(*, actor: Actor, budget: Budget) -> None:
    """Delete a budget; keys it blocked are no longer blocked by it.

    Side effects: deletes the Budget row and its key links; one AuditEntry.
    """
    record_audit(
        actor=actor, action="budget.delete", instance=budget, before=snapshot(budget, BUDGET_FIELDS), after=None
    )
    budget.delete()

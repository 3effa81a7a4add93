"""Budgets enforced: thresholds fire alerts, hard caps block keys, new periods unblock.

Three ways in, one set of rules:

- ``after_charge``: from the ingest (and re-price) transaction, with each touched
  period's spend before and after the charge. Only crossings act, so the common case
  (nothing crossed) costs no query.
- ``reevaluate_budget``: when an amount, threshold, cap or override changes, at once.
- ``reconcile_budgets``: the beat task, every minute at second 0. It unblocks keys when
  a new period starts, blocks keys created in an exceeded scope since, and applies
  overrides that expired. It is also the safety net for anything the fast paths missed.

Whenever a key's status changes, ``desired_state_changed`` is sent after commit: the one
hook the config push (gateway nodes) listens to.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Q, QuerySet

from governance import budget_state as bs
from governance.actors import Actor
from governance.models import AlertKind, Budget, BudgetPeriod, BudgetScope, VirtualKey, VirtualKeyStatus
from governance.periods import period_bounds
from governance.services.alerts import AlertDraft, armed_alert_exists, fire_alert, rearm_alerts
from governance.services.audit import record_audit
from governance.services.config import request_render, requests_so_far
from governance.signals import desired_state_changed

logger = logging.getLogger("bursar.budgets")
SYSTEM = Actor.system("budgets")


def notify_desired_state_changed(*, reason: str, urgent: bool = False) -> None:
    """The single hook for "what gateways should enforce may have changed": counts a
    render request in this transaction and sends ``desired_state_changed`` after commit.
    """
    request_render()

    def send() -> None:
        desired_state_changed.send(sender=VirtualKey, reason=reason, urgent=urgent, covering=requests_so_far())

    transaction.on_commit(send, robust=True)


@dataclass(frozen=True)
class PeriodSpend:
    """One budget period's spend around a change. ``before`` None means "re-evaluate
    from scratch" (the amount or thresholds changed), not "crossed just now"."""

    budget_id: int
    period_id: int
    start: datetime
    end: datetime
    before: Decimal | None
    after: Decimal


@dataclass
class Outcome:
    alerts: list[int] = field(default_factory=list)
    blocked: list[int] = field(default_factory=list)  # key ids newly blocked
    unblocked: list[int] = field(default_factory=list)


# --- keys ---------------------------------------------------------------------------------


def scope_keys(budget: Budget) -> QuerySet[VirtualKey]:
    """The keys a budget governs: all for the organization; a customer's own keys and
    its teams' keys (issuing resolves a team key's customer); a team's; the key itself."""
    if budget.scope_type == BudgetScope.ORGANIZATION:
        return VirtualKey.objects.all()
    if budget.scope_type == BudgetScope.CUSTOMER:
        return VirtualKey.objects.filter(Q(customer_id=budget.customer_id) | Q(team__customer_id=budget.customer_id))
    if budget.scope_type == BudgetScope.TEAM:
        return VirtualKey.objects.filter(team_id=budget.scope_id or 0)
    return VirtualKey.objects.filter(pk=budget.scope_id or 0)


def _links() -> Any:
    """The key ↔ blocking-budget link model (the ``blocked_by`` through table)."""
    return VirtualKey.blocked_by.through


def _lock_keys(ids: list[int]) -> None:
    """Row-lock keys in id order before changing them, so two transactions blocking
    overlapping scopes queue up instead of deadlocking.

    Lock order everywhere: budget period rows (ingest's upsert), then the render mark
    (``request_render``), then keys in id order, then the audit chain. Key services take
    the mark before their key row for the same reason."""
    if ids:
        list(VirtualKey.objects.select_for_update().filter(pk__in=ids).order_by("pk").values_list("pk", flat=True))


def block_keys(budget: Budget, *, now: datetime, reason: str) -> list[int]:
    """Link every live key in the budget's scope to it and mark the active ones
    blocked; returns the ids that went from active to blocked.

    Side effects: blocked_by links, VirtualKey status, one AuditEntry when a key changed.
    """
    links = _links()
    live = list(
        scope_keys(budget)
        .filter(status__in=[VirtualKeyStatus.ACTIVE, VirtualKeyStatus.BLOCKED])
        .values_list("pk", "public_id", "status")
    )
    if not live:
        return []
    links.objects.bulk_create(
        [links(virtualkey_id=pk, budget_id=budget.pk) for pk, _, _ in live], ignore_conflicts=True
    )
    active = [pk for pk, _, status in live if status == VirtualKeyStatus.ACTIVE]
    if active:
        request_render()  # the render mark before any key lock (see _lock_keys)
    _lock_keys(active)
    VirtualKey.objects.filter(pk__in=active, status=VirtualKeyStatus.ACTIVE).update(
        status=VirtualKeyStatus.BLOCKED, updated_at=now
    )
    if active:
        names = sorted(public_id for pk, public_id, status in live if status == VirtualKeyStatus.ACTIVE)
        record_audit(
            actor=SYSTEM,
            action="budget.block_keys",
            instance=budget,
            before=None,
            after={"reason": reason, "keys": names},
        )
        notify_desired_state_changed(reason=f"budget {budget.pk}: {reason}", urgent=True)
    return active


def unblock_keys(budget: Budget, *, now: datetime, reason: str) -> list[int]:
    """Drop the budget's blocks; keys no other budget blocks become active again.

    Side effects: blocked_by links deleted, VirtualKey status, one AuditEntry when a
    key changed.
    """
    links = _links()
    held = list(links.objects.filter(budget_id=budget.pk).values_list("virtualkey_id", flat=True))
    if not held:
        return []
    links.objects.filter(budget_id=budget.pk).delete()
    still_blocked = links.objects.filter(virtualkey_id=OuterRef("pk"))
    freed = list(
        VirtualKey.objects.filter(pk__in=held, status=VirtualKeyStatus.BLOCKED)
        .exclude(Exists(still_blocked))
        .values_list("pk", "public_id")
    )
    if freed:
        request_render()  # the render mark before any key lock (see _lock_keys)
        _lock_keys([pk for pk, _ in freed])
        VirtualKey.objects.filter(pk__in=[pk for pk, _ in freed], status=VirtualKeyStatus.BLOCKED).exclude(
            Exists(still_blocked)
        ).update(status=VirtualKeyStatus.ACTIVE, updated_at=now)
        record_audit(
            actor=SYSTEM,
            action="budget.unblock_keys",
            instance=budget,
            before=None,
            after={"reason": reason, "keys": sorted(public_id for _, public_id in freed)},
        )
        notify_desired_state_changed(reason=f"budget {budget.pk}: {reason}")
    return [pk for pk, _ in freed]


def blocking_budgets_for(key: VirtualKey, *, now: datetime) -> list[Budget]:
    """Hard-capped budgets in the key's chain whose current period is exceeded (used
    when a key is issued or moved into a scope that is already over its cap)."""
    chain = Q(scope_type=BudgetScope.ORGANIZATION) | Q(virtual_key_id=key.pk)
    if key.team_id:
        chain |= Q(team_id=key.team_id)
    if key.customer_id:
        chain |= Q(customer_id=key.customer_id)
    found = []
    for budget in Budget.objects.filter(chain, hard_cap=True):
        start, _ = period_bounds(budget.period, budget.timezone, now)
        spent = BudgetPeriod.objects.filter(budget=budget, start=start).values_list("spent", flat=True).first()
        if spent is not None and bs.is_exceeded(spent, budget.limit_at(now)):
            found.append(budget)
    return found


def refresh_key_blocks(key: VirtualKey, *, now: datetime) -> None:
    """Make one key's blocks match the budgets of the scopes it is in now (it was just
    issued, or moved to another team or customer).

    Side effects: blocked_by links and the key's status; audit entries for blocks.
    """
    request_render()
    exceeded = blocking_budgets_for(key, now=now)
    links = _links()
    links.objects.filter(virtualkey_id=key.pk).exclude(budget_id__in=[b.pk for b in exceeded]).delete()
    for budget in exceeded:
        block_keys(budget, now=now, reason="a key joined a scope over its hard cap")
    if not exceeded:
        VirtualKey.objects.filter(pk=key.pk, status=VirtualKeyStatus.BLOCKED).update(
            status=VirtualKeyStatus.ACTIVE, updated_at=now
        )
    key.refresh_from_db(fields=["status", "updated_at"])


# --- messages -----------------------------------------------------------------------------


def _money(value: Decimal, currency: str) -> str:
    return f"{value.quantize(Decimal('0.01')):,} {currency}"


def _when(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC")


def _message(
    budget: Budget, kind: str, threshold: int, spent: Decimal, limit: Decimal, p: PeriodSpend, **extra: str
) -> str:
    head = f"Budget {budget.pk} ({budget.scope_label()}, {budget.period} {_money(limit, budget.currency)})"
    period = f"the period {_when(p.start)} to {_when(p.end)}"
    used = f"{_money(spent, budget.currency)} spent ({bs.percent_of(spent, limit)}%)"
    if kind == AlertKind.SOFT:
        return f"{head}: {threshold}% threshold crossed, {used} in {period}."
    if kind == AlertKind.HARD:
        consequence = (
            f"its keys are blocked until the period ends ({_when(p.end)}) or the budget is raised"
            if budget.hard_cap
            else "no hard cap, so keys stay active"
        )
        return f"{head}: amount reached, {used} in {period}; {consequence}."
    if kind == AlertKind.FORECAST:
        return (
            f"{head}: at the burn rate so far, spend reaches the amount around {extra['projected']}, "
            f"before the period ends ({_when(p.end)}); projected period spend {extra['forecast']}. {used}."
        )
    return (
        f"{head}: a new period began ({_when(p.start)} to {_when(p.end)}); "
        f"{extra['count']} blocked keys are active again."
    )


# --- evaluation ---------------------------------------------------------------------------


def _evaluate(budget: Budget, p: PeriodSpend, *, now: datetime, outcome: Outcome) -> None:
    current = p.start <= now < p.end
    limit = budget.limit_at(now) if current else budget.amount
    drafts: list[tuple[str, int, dict[str, str], datetime | None]] = []
    for threshold in bs.crossed_thresholds(p.before, p.after, limit, budget.soft_thresholds):
        drafts.append((AlertKind.SOFT, threshold, {}, None))
    exceeded = bs.is_exceeded(p.after, limit)
    was_exceeded = p.before is not None and bs.is_exceeded(p.before, limit)
    if exceeded and not was_exceeded:
        drafts.append((AlertKind.HARD, 100, {}, None))
    if (
        current
        and not exceeded
        and bs.forecast_is_due(p.start, p.end, now, min_elapsed_percent=settings.BUDGET_FORECAST_MIN_ELAPSED_PERCENT)
    ):
        forecast = bs.forecast_spend(p.after, p.start, p.end, now)
        projected = bs.projected_exhaustion(p.after, limit, p.start, p.end, now)
        if (
            forecast > limit
            and projected
            and not armed_alert_exists(period_id=p.period_id, kind="forecast", threshold=100)
        ):
            extra = {"projected": _when(projected), "forecast": _money(forecast, budget.currency)}
            drafts.append((AlertKind.FORECAST, 100, extra, projected))
    for kind, threshold, extra, projected_at in drafts:
        alert = fire_alert(
            AlertDraft(
                budget=budget,
                period_id=p.period_id,
                period_start=p.start,
                period_end=p.end,
                kind=kind,
                threshold=threshold,
                spent=p.after,
                limit=limit,
                message=_message(budget, kind, threshold, p.after, limit, p, **extra),
                projected_at=projected_at,
            ),
            now=now,
        )
        if alert is not None:
            outcome.alerts.append(alert.pk)
    if not current:
        return  # a late event in a past period alerts, but blocking is about now
    if budget.hard_cap and exceeded and (p.before is None or not was_exceeded):
        spent, cap = _money(p.after, budget.currency), _money(limit, budget.currency)
        reason = f"exceeded: {budget.period} {budget.scope_label()} spent {spent} of {cap}"
        outcome.blocked += block_keys(budget, now=now, reason=reason)
    elif not (budget.hard_cap and exceeded) and (p.before is None or was_exceeded):
        outcome.unblocked += unblock_keys(budget, now=now, reason="no longer exceeded")


def after_charge(changes: list[PeriodSpend], *, budgets: dict[int, Budget], now: datetime) -> Outcome:
    """Act on spend just charged (inside the charging transaction)."""
    outcome = Outcome()
    for change in changes:
        budget = budgets[change.budget_id]
        if change.after == change.before:
            continue
        if _crosses_something(budget, change, now):
            _evaluate(budget, change, now=now, outcome=outcome)
    return outcome


def _crosses_something(budget: Budget, p: PeriodSpend, now: datetime) -> bool:
    """A cheap test that keeps the no-crossing case free of queries."""
    current = p.start <= now < p.end
    limit = budget.limit_at(now) if current else budget.amount
    if p.before is None or bs.crossed_thresholds(p.before, p.after, limit, budget.soft_thresholds):
        return True
    if bs.is_exceeded(p.after, limit) != bs.is_exceeded(p.before, limit):
        return True
    return (
        current
        and bs.forecast_is_due(p.start, p.end, now, min_elapsed_percent=settings.BUDGET_FORECAST_MIN_ELAPSED_PERCENT)
        and bs.forecast_spend(p.after, p.start, p.end, now) > limit
        and not bs.is_exceeded(p.after, limit)
    )


def current_period(budget: Budget, *, now: datetime, create: bool = False) -> BudgetPeriod | None:
    start, end = period_bounds(budget.period, budget.timezone, now)
    if create:
        period, _ = BudgetPeriod.objects.get_or_create(
            budget=budget, start=start, defaults={"end": end, "spent": bs.ZERO}
        )
        return period
    return BudgetPeriod.objects.filter(budget=budget, start=start).first()


def reevaluate_budget(budget: Budget, *, now: datetime) -> Outcome:
    """Apply a changed amount, threshold list, cap or override to the current period at
    once: re-arm alerts whose condition no longer holds (a raise), fire those that now
    hold (a lower amount), block or unblock keys. Call inside the change's transaction.
    """
    outcome = Outcome()
    period = current_period(budget, now=now)
    if period is None:  # nothing spent yet this period: nothing to fire or block
        outcome.unblocked += unblock_keys(budget, now=now, reason="no spend in the current period")
        return outcome
    limit = budget.limit_at(now)
    spent = period.spent
    keep: set[tuple[str, int]] = {
        (AlertKind.SOFT, t) for t in bs.crossed_thresholds(None, spent, limit, budget.soft_thresholds)
    }
    if bs.is_exceeded(spent, limit):
        keep.add((AlertKind.HARD, 100))
    elif bs.forecast_spend(spent, period.start, period.end, now) > limit:
        keep.add((AlertKind.FORECAST, 100))
    rearm_alerts(period_id=period.pk, keep=keep, now=now)
    change = PeriodSpend(budget.pk, period.pk, period.start, period.end, before=None, after=spent)
    _evaluate(budget, change, now=now, outcome=outcome)
    return outcome


@dataclass
class ReconcileResult:
    budgets: int = 0
    blocked: int = 0
    unblocked: int = 0
    alerts: int = 0


def reconcile_budgets(*, now: datetime) -> ReconcileResult:
    """Bring every key's block in line with its budgets' current periods.

    Each budget is its own transaction (one failing does not hold up the rest).
    Side effects: blocked_by links and key statuses; reset and hard alerts; audit entries.
    """
    result = ReconcileResult()
    links = _links()
    blocking = set(links.objects.values_list("budget_id", flat=True).distinct())
    current_spend = {
        (row["budget_id"], row["start"]): row["spent"]
        for row in BudgetPeriod.objects.filter(start__lte=now, end__gt=now).values("budget_id", "start", "spent")
    }
    for budget in Budget.objects.select_related("customer", "team", "virtual_key").order_by("pk"):
        result.budgets += 1
        start, _ = period_bounds(budget.period, budget.timezone, now)
        spent = current_spend.get((budget.pk, start), bs.ZERO)
        limit = budget.limit_at(now)
        exceeded = bs.is_exceeded(spent, limit)
        if not (budget.hard_cap and exceeded) and budget.pk not in blocking:
            continue
        with transaction.atomic():
            if budget.hard_cap and exceeded:
                _reconcile_exceeded(budget, now=now, result=result)
            else:
                _reconcile_reset(budget, now=now, result=result)
    return result


def _reconcile_exceeded(budget: Budget, *, now: datetime, result: ReconcileResult) -> None:
    period = current_period(budget, now=now)
    if period is None:
        return
    change = PeriodSpend(budget.pk, period.pk, period.start, period.end, before=None, after=period.spent)
    outcome = Outcome()
    _evaluate(budget, change, now=now, outcome=outcome)  # claims the hard alert if an override lapsed
    result.blocked += len(outcome.blocked)
    result.alerts += len(outcome.alerts)


def _reconcile_reset(budget: Budget, *, now: datetime, result: ReconcileResult) -> None:
    period = current_period(budget, now=now, create=True)
    assert period is not None
    if armed_alert_exists(period_id=period.pk, kind=AlertKind.HARD, threshold=100):
        # Blocked in this very period, and no longer over: the amount was raised while a
        # charge was in flight. Not a new period, so no reset alert; re-arm instead.
        outcome = reevaluate_budget(budget, now=now)
        result.unblocked += len(outcome.unblocked)
        return
    freed = unblock_keys(budget, now=now, reason="new period")
    result.unblocked += len(freed)
    if not freed:
        return
    change = PeriodSpend(budget.pk, period.pk, period.start, period.end, before=None, after=period.spent)
    limit = budget.limit_at(now)
    alert = fire_alert(
        AlertDraft(
            budget=budget,
            period_id=period.pk,
            period_start=period.start,
            period_end=period.end,
            kind=AlertKind.RESET,
            threshold=0,
            spent=period.spent,
            limit=limit,
            message=_message(budget, AlertKind.RESET, 0, period.spent, limit, change, count=str(len(freed))),
        ),
        now=now,
    )
    result.alerts += alert is not None

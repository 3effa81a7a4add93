"""Thresholds, hard caps, overrides, resets: what budgets do as spend arrives."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from governance.models import Alert, AuditEntry, BudgetPeriod, VirtualKey
from governance.services.budgets import clear_override, delete_budget, grant_override, update_budget
from governance.services.enforcement import reconcile_budgets
from governance.services.spend import SpendCharge, charge_spend
from governance.services.virtual_keys import update_virtual_key
from governance.signals import desired_state_changed
from ingest.models import IngestBatch
from ingest.services import process_batch
from tests.factories import ACTOR, make_budget, make_customer, make_key, make_team, native_event

pytestmark = pytest.mark.django_db

# A fixed instant mid-December, so periods and forecasts are the same on every run.
NOW = datetime(2026, 12, 16, 12, 0, tzinfo=UTC)
MONTH_START = datetime(2026, 12, 1, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _no_forecasts(settings):
    """Forecast alerts are tested on their own; elsewhere they would add noise (mid-month,
    any spend projects past a small amount)."""
    settings.BUDGET_FORECAST_MIN_ELAPSED_PERCENT = 100


def charge(customer, amount, *, at=NOW, now=NOW, team=None, key=None):
    charge_spend(charges=[SpendCharge(at, Decimal(amount), customer.pk if customer else None, team, key)], now=now)


def alerts(budget):
    return list(Alert.objects.filter(budget=budget).order_by("id").values_list("kind", "threshold"))


def status(key):
    key.refresh_from_db()
    return key.status, sorted(key.blocked_by.values_list("pk", flat=True))


@pytest.fixture
def acme():
    customer = make_customer(external_id="acme")
    team = make_team(customer=customer)
    return customer, team


def test_each_soft_threshold_fires_once_per_period(acme):
    customer, _ = acme
    budget = make_budget(scope_type="customer", scope_id=customer.pk, soft_thresholds=[50, 80, 90], now=NOW)

    charge(customer, "49.99")
    assert alerts(budget) == []
    charge(customer, "0.01")
    assert alerts(budget) == [("soft", 50)]
    charge(customer, "5")
    assert alerts(budget) == [("soft", 50)]
    charge(customer, "40")  # 95%: one jump crosses 80 and 90
    assert alerts(budget) == [("soft", 50), ("soft", 80), ("soft", 90)]
    alert = Alert.objects.get(budget=budget, threshold=80)
    assert alert.period.start == MONTH_START and alert.spent == Decimal("95")
    assert "80% threshold crossed" in alert.message and "customer acme" in alert.message


def test_a_hard_cap_blocks_every_key_in_the_scope_and_nothing_else(acme, django_capture_on_commit_callbacks):
    customer, team = acme
    team_key = make_key(team=team, now=NOW).key
    own_key = make_key(customer=customer, now=NOW).key
    other = make_key(customer=make_customer(), now=NOW).key
    budget = make_budget(scope_type="customer", scope_id=customer.pk, soft_thresholds=[], now=NOW)
    sent = []

    def receiver(sender, **kwargs):
        sent.append(kwargs)

    desired_state_changed.connect(receiver)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            charge(customer, "99.99")
        assert status(team_key) == ("active", [])
        with django_capture_on_commit_callbacks(execute=True):
            charge(customer, "0.01")  # exactly the amount: the cap is reached
    finally:
        desired_state_changed.disconnect(receiver)

    assert status(team_key) == ("blocked", [budget.pk])
    assert status(own_key) == ("blocked", [budget.pk])
    assert status(other) == ("active", [])
    assert alerts(budget) == [("hard", 100)]
    assert [s["urgent"] for s in sent] == [True]
    entry = AuditEntry.objects.get(action="budget.block_keys")
    assert entry.after is not None and entry.after["keys"] == sorted([team_key.public_id, own_key.public_id])


def test_a_key_budget_and_an_organization_budget_chain(acme):
    customer, team = acme
    key = make_key(team=team, now=NOW).key
    sibling = make_key(team=team, now=NOW).key
    key_budget = make_budget(scope_type="virtual_key", scope_id=key.pk, amount=Decimal("10"), now=NOW)
    org_budget = make_budget(amount=Decimal("1000"), now=NOW)

    charge(customer, "10", team=team.pk, key=key.pk)

    assert status(key) == ("blocked", [key_budget.pk])
    assert status(sibling) == ("active", [])
    assert BudgetPeriod.objects.get(budget=org_budget).spent == Decimal("10")


def test_without_a_hard_cap_reaching_the_amount_alerts_but_blocks_nothing(acme):
    customer, team = acme
    key = make_key(team=team, now=NOW).key
    budget = make_budget(scope_type="customer", scope_id=customer.pk, hard_cap=False, soft_thresholds=[], now=NOW)

    charge(customer, "150")

    assert alerts(budget) == [("hard", 100)]
    assert "no hard cap" in Alert.objects.get(budget=budget).message
    assert status(key) == ("active", [])


def test_a_late_event_charges_its_own_period_and_blocks_nothing_now(acme):
    customer, team = acme
    key = make_key(team=team, now=NOW).key
    budget = make_budget(scope_type="customer", scope_id=customer.pk, soft_thresholds=[50], now=NOW)

    charge(customer, "120", at=datetime(2026, 11, 30, 23, 0, tzinfo=UTC))

    periods = {p.start: p.spent for p in BudgetPeriod.objects.filter(budget=budget)}
    assert periods == {datetime(2026, 11, 1, tzinfo=UTC): Decimal("120")}
    assert alerts(budget) == [("soft", 50), ("hard", 100)]  # November's alerts, fired late
    assert Alert.objects.filter(budget=budget).order_by("id")[0].period.start == datetime(2026, 11, 1, tzinfo=UTC)
    assert status(key) == ("active", [])


def test_raising_the_amount_unblocks_and_rearms_thresholds_above_the_new_percentage(acme):
    customer, team = acme
    key = make_key(team=team, now=NOW).key
    budget = make_budget(scope_type="customer", scope_id=customer.pk, soft_thresholds=[50, 80], now=NOW)
    charge(customer, "100")
    assert status(key) == ("blocked", [budget.pk])

    update_budget(actor=ACTOR, budget=budget, changes={"amount": Decimal("160")}, now=NOW)  # 62.5%

    assert status(key) == ("active", [])
    armed = Alert.objects.filter(budget=budget, rearmed_at__isnull=True).values_list("kind", "threshold")
    assert sorted(armed) == [("soft", 50)]
    assert AuditEntry.objects.filter(action="budget.update").count() == 1
    assert AuditEntry.objects.filter(action="budget.unblock_keys").count() == 1

    charge(customer, "30")  # 81.25%: 80 fires again
    assert alerts(budget) == [("soft", 50), ("soft", 80), ("hard", 100), ("soft", 80)]
    charge(customer, "30")  # 100%: blocked again, and hard fires again
    assert status(key) == ("blocked", [budget.pk])
    assert alerts(budget)[-1] == ("hard", 100)


def test_lowering_the_amount_blocks_at_once_and_fires_what_it_reached(acme):
    customer, team = acme
    key = make_key(team=team, now=NOW).key
    budget = make_budget(
        scope_type="customer", scope_id=customer.pk, amount=Decimal("1000"), soft_thresholds=[50, 80], now=NOW
    )
    charge(customer, "100")
    assert alerts(budget) == []

    update_budget(actor=ACTOR, budget=budget, changes={"amount": Decimal("90")}, now=NOW)

    assert status(key) == ("blocked", [budget.pk])
    assert alerts(budget) == [("soft", 50), ("soft", 80), ("hard", 100)]


def test_scope_period_and_timezone_cannot_change(acme):
    customer, _ = acme
    budget = make_budget(scope_type="customer", scope_id=customer.pk, now=NOW)
    from bursar.errors import InvalidInput

    for changes in ({"period": "daily"}, {"timezone": "Europe/Paris"}, {"scope_id": 3}):
        with pytest.raises(InvalidInput) as caught:
            update_budget(actor=ACTOR, budget=budget, changes=changes, now=NOW)
        assert caught.value.field == next(iter(changes))
    # Sending the current value is not a change.
    update_budget(actor=ACTOR, budget=budget, changes={"period": "monthly", "amount": Decimal("5")}, now=NOW)


def test_an_override_unblocks_until_it_lapses_then_the_minute_sweep_blocks_again(acme):
    customer, team = acme
    key = make_key(team=team, now=NOW).key
    budget = make_budget(scope_type="customer", scope_id=customer.pk, soft_thresholds=[], now=NOW)
    charge(customer, "110")
    assert status(key)[0] == "blocked"

    grant_override(
        actor=ACTOR,
        budget=budget,
        extra_amount=Decimal("50"),
        expires_at=NOW + timedelta(hours=2),
        reason="launch day",
        now=NOW,
    )
    assert status(key) == ("active", [])
    override = AuditEntry.objects.filter(action="budget.override").get()
    assert override.after is not None and override.after["override_reason"] == "launch day"

    assert reconcile_budgets(now=NOW + timedelta(hours=1)).blocked == 0
    result = reconcile_budgets(now=NOW + timedelta(hours=2, minutes=1))
    assert (result.blocked, result.alerts) == (1, 1)
    assert status(key) == ("blocked", [budget.pk])
    assert alerts(budget) == [("hard", 100), ("hard", 100)]


def test_clearing_an_override_applies_the_cap_again(acme):
    customer, team = acme
    key = make_key(team=team, now=NOW).key
    budget = make_budget(scope_type="customer", scope_id=customer.pk, now=NOW)
    grant_override(
        actor=ACTOR, budget=budget, extra_amount=Decimal("50"), expires_at=NOW + timedelta(days=1), reason="x", now=NOW
    )
    charge(customer, "120")
    assert status(key)[0] == "active"

    clear_override(actor=ACTOR, budget=budget, now=NOW)

    assert status(key)[0] == "blocked"


def test_the_next_period_unblocks_at_its_first_minute_and_sends_a_reset(acme):
    customer, team = acme
    key = make_key(team=team, now=NOW).key
    budget = make_budget(scope_type="customer", scope_id=customer.pk, timezone="Europe/Paris", now=NOW)
    charge(customer, "100")
    assert status(key)[0] == "blocked"
    paris_new_year = datetime(2026, 12, 31, 23, 0, tzinfo=UTC)  # 1 January 00:00 in Paris

    assert reconcile_budgets(now=paris_new_year - timedelta(minutes=1)).unblocked == 0
    assert status(key)[0] == "blocked"
    result = reconcile_budgets(now=paris_new_year)

    assert result.unblocked == 1 and status(key) == ("active", [])
    reset = Alert.objects.get(budget=budget, kind="reset")
    assert reset.period.start == paris_new_year and reset.period.spent == 0
    assert BudgetPeriod.objects.get(budget=budget, start=datetime(2026, 11, 30, 23, tzinfo=UTC)).spent == 100
    assert reconcile_budgets(now=paris_new_year + timedelta(minutes=1)).alerts == 0  # once


def test_a_key_issued_or_moved_into_an_exceeded_scope_is_blocked(acme):
    customer, team = acme
    budget = make_budget(scope_type="customer", scope_id=customer.pk, now=NOW)
    charge(customer, "100")
    elsewhere = make_key(now=NOW).key

    issued = make_key(team=team, now=NOW).key
    assert status(issued) == ("blocked", [budget.pk])

    update_virtual_key(actor=ACTOR, key=elsewhere, changes={"customer": customer}, now=NOW)
    assert status(elsewhere) == ("blocked", [budget.pk])
    update_virtual_key(actor=ACTOR, key=elsewhere, changes={"customer": None}, now=NOW)
    assert status(elsewhere) == ("active", [])


def test_a_key_blocked_by_two_budgets_stays_blocked_until_both_allow_it(acme):
    customer, team = acme
    key = make_key(team=team, now=NOW).key
    customer_budget = make_budget(scope_type="customer", scope_id=customer.pk, now=NOW)
    team_budget = make_budget(scope_type="team", scope_id=team.pk, amount=Decimal("50"), now=NOW)
    charge(customer, "100", team=team.pk)
    assert status(key) == ("blocked", sorted([customer_budget.pk, team_budget.pk]))

    update_budget(actor=ACTOR, budget=customer_budget, changes={"amount": Decimal("500")}, now=NOW)
    assert status(key) == ("blocked", [team_budget.pk])
    delete_budget(actor=ACTOR, budget=team_budget, now=NOW)
    assert status(key) == ("active", [])


def test_a_revoked_key_is_never_unblocked_into_life(acme):
    from governance.services.virtual_keys import revoke_virtual_key

    customer, team = acme
    key = make_key(team=team, now=NOW).key
    budget = make_budget(scope_type="customer", scope_id=customer.pk, now=NOW)
    charge(customer, "100")
    revoke_virtual_key(actor=ACTOR, key=VirtualKey.objects.get(pk=key.pk), now=NOW)

    update_budget(actor=ACTOR, budget=budget, changes={"amount": Decimal("1000")}, now=NOW)

    assert status(key)[0] == "revoked"


def test_a_forecast_alert_says_when_the_amount_will_be_reached(acme, settings):
    settings.BUDGET_FORECAST_MIN_ELAPSED_PERCENT = 10
    customer, _ = acme
    budget = make_budget(scope_type="customer", scope_id=customer.pk, soft_thresholds=[90], now=NOW)
    early = MONTH_START + timedelta(days=2)  # under 10% of December: too early to say

    charge(customer, "20", now=early)
    assert alerts(budget) == []
    ten_days_in = MONTH_START + timedelta(days=10)  # 20 in 10 days: 2/day → 62 by month end
    charge(customer, "20", now=ten_days_in)  # 40 in 10 days → 124 by the end, 100 reached on day 25
    assert alerts(budget) == [("forecast", 100)]
    forecast = Alert.objects.get(budget=budget)
    assert forecast.projected_at == MONTH_START + timedelta(days=25)
    assert "2026-12-26 00:00 UTC" in forecast.message and "124.00 USD" in forecast.message
    charge(customer, "1", now=ten_days_in)
    assert alerts(budget) == [("forecast", 100)]  # once per period


def test_a_budget_opened_mid_period_starts_from_the_spend_so_far(gateway):
    customer = make_customer(external_id="late_budget")
    now = timezone.now()
    events = [
        native_event(request_id=f"r{i}", customer="late_budget", cost="1.25", timestamp=now.isoformat())
        for i in range(4)
    ]
    gateway.generic("POST", "/api/v1/ingest/events", json.dumps(events), content_type="application/json")
    for batch_id in IngestBatch.objects.values_list("id", flat=True):
        process_batch(batch_id=batch_id)

    budget = make_budget(scope_type="customer", scope_id=customer.pk, period="daily", amount=Decimal("5"), now=now)

    assert BudgetPeriod.objects.get(budget=budget).spent == Decimal("5")
    assert alerts(budget) == [("soft", 50), ("soft", 80), ("hard", 100)]


def test_a_budget_in_another_currency_is_charged_at_the_configured_rate(acme, settings):
    settings.EXCHANGE_RATES = {"USD": Decimal(1), "EUR": Decimal("0.9")}
    customer, _ = acme
    budget = make_budget(scope_type="customer", scope_id=customer.pk, currency="EUR", now=NOW)

    charge(customer, "10")

    assert BudgetPeriod.objects.get(budget=budget).spent == Decimal("9")


def test_a_currency_without_a_rate_is_refused(acme):
    from bursar.errors import InvalidInput

    customer, _ = acme
    with pytest.raises(InvalidInput) as caught:
        make_budget(scope_type="customer", scope_id=customer.pk, currency="JPY", now=NOW)
    assert caught.value.field == "currency" and "EXCHANGE_RATES" in str(caught.value)


def test_duplicate_and_resent_events_never_charge_twice(gateway):
    customer = make_customer(external_id="dupes")
    budget = make_budget(scope_type="customer", scope_id=customer.pk, amount=Decimal("1000"), period="daily")
    now = timezone.now().isoformat()
    event = native_event(request_id="once", customer="dupes", cost="2.5", timestamp=now)
    for body in (
        [event, event],
        [event],
        [event, native_event(request_id="twice", customer="dupes", cost="1", timestamp=now)],
    ):
        gateway.generic("POST", "/api/v1/ingest/events", json.dumps(body), content_type="application/json")
    for batch_id in IngestBatch.objects.order_by("received_at").values_list("id", flat=True):
        process_batch(batch_id=batch_id, alone=True)
        process_batch(batch_id=batch_id, alone=True)  # a redelivered task

    assert BudgetPeriod.objects.get(budget=budget).spent == Decimal("3.5")


def test_the_reconcile_command_does_the_minute_s_work_without_beat(acme):
    from io import StringIO

    from django.core.management import call_command

    customer, team = acme
    key = make_key(team=team).key
    budget = make_budget(scope_type="customer", scope_id=customer.pk, period="daily")
    charge_spend(charges=[SpendCharge(timezone.now(), Decimal("100"), customer.pk, None, None)])
    assert status(key)[0] == "blocked"
    # The day ends: its period row now lies in the past.
    BudgetPeriod.objects.filter(budget=budget).update(
        start=timezone.now() - timedelta(days=2), end=timezone.now() - timedelta(days=1)
    )

    out = StringIO()
    call_command("reconcile_budgets", stdout=out)

    assert status(key) == ("active", [])
    assert "1 unblocked" in out.getvalue() and "1 alerts fired" in out.getvalue()


def test_a_block_left_by_a_charge_racing_a_raise_is_undone_within_the_minute_without_a_reset(acme):
    customer, team = acme
    key = make_key(team=team, now=NOW).key
    budget = make_budget(scope_type="customer", scope_id=customer.pk, soft_thresholds=[], now=NOW)
    charge(customer, "100")
    # The raise committed while that charge still worked with the old amount.
    type(budget).objects.filter(pk=budget.pk).update(amount=Decimal("500"))

    result = reconcile_budgets(now=NOW + timedelta(minutes=1))

    assert result.unblocked == 1 and status(key) == ("active", [])
    assert alerts(budget) == [("hard", 100)]  # no reset: the period did not change
    assert Alert.objects.get(budget=budget).rearmed_at is not None

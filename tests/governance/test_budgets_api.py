"""The budgets, alerts and alert-channels endpoints as a client sees them."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from governance.models import AuditEntry, VirtualKey
from governance.services.spend import SpendCharge, charge_spend
from tests.factories import make_customer, make_key, make_team

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_forecasts(settings):
    settings.BUDGET_FORECAST_MIN_ELAPSED_PERCENT = 100


def test_a_budget_reads_with_its_current_period(admin_api):
    customer = make_customer()
    created = admin_api.post(
        "/api/v1/budgets/",
        {
            "scope_type": "customer",
            "scope_id": customer.pk,
            "amount": "200",
            "period": "daily",
            "soft_thresholds": [50],
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    charge_spend(charges=[SpendCharge(timezone.now(), Decimal("120.5"), customer.pk, None, None)])

    body = admin_api.get(f"/api/v1/budgets/{created.json()['id']}/").json()

    assert (body["spent"], body["remaining"], body["percent_used"], body["state"]) == (
        "120.5000",
        "79.5000",
        "60.25",
        "warning",
    )
    assert body["limit"] == "200.0000" and body["override"] is None
    assert body["period_start"].endswith("T00:00:00Z") and body["period_end"].endswith("T00:00:00Z")
    assert Decimal(body["forecast_period_spend"]) >= Decimal("120.5")
    listed = admin_api.get("/api/v1/budgets/?scope_type=customer").json()["results"]
    assert [(b["id"], b["spent"]) for b in listed] == [(body["id"], "120.5000")]


def test_raising_a_budget_over_the_api_unblocks_its_keys_and_is_audited(admin_api):
    customer = make_customer()
    key = make_key(team=make_team(customer=customer)).key
    budget = admin_api.post(
        "/api/v1/budgets/", {"scope_type": "customer", "scope_id": customer.pk, "amount": "10"}, format="json"
    ).json()
    charge_spend(charges=[SpendCharge(timezone.now(), Decimal("10"), customer.pk, None, None)])
    read = admin_api.get(f"/api/v1/virtual-keys/{key.pk}/").json()
    assert (read["status"], read["blocked_by"]) == ("blocked", [budget["id"]])
    assert admin_api.get(f"/api/v1/budgets/{budget['id']}/").json()["state"] == "exceeded"

    raised = admin_api.patch(f"/api/v1/budgets/{budget['id']}/", {"amount": "20"}, format="json")

    assert raised.json()["state"] == "warning"  # 50% with the default thresholds [50, 80]
    read = admin_api.get(f"/api/v1/virtual-keys/{key.pk}/").json()
    assert (read["status"], read["blocked_by"]) == ("active", [])
    assert AuditEntry.objects.filter(action="budget.update", object_id=str(budget["id"])).exists()


def test_an_override_is_granted_shown_and_cleared(admin_api):
    customer = make_customer()
    key = make_key(customer=customer).key
    budget = admin_api.post(
        "/api/v1/budgets/", {"scope_type": "customer", "scope_id": customer.pk, "amount": "10"}, format="json"
    ).json()
    charge_spend(charges=[SpendCharge(timezone.now(), Decimal("12"), customer.pk, None, None)])
    until = (timezone.now() + timedelta(hours=4)).isoformat()

    granted = admin_api.post(
        f"/api/v1/budgets/{budget['id']}/override/",
        {"extra_amount": "5", "expires_at": until, "reason": "board demo"},
        format="json",
    )

    assert granted.status_code == 200, granted.content
    body = granted.json()
    assert body["limit"] == "15.0000" and body["override"]["reason"] == "board demo" and body["state"] != "exceeded"
    assert VirtualKey.objects.get(pk=key.pk).status == "active"
    cleared = admin_api.delete(f"/api/v1/budgets/{budget['id']}/override/")
    assert cleared.json()["override"] is None and cleared.json()["state"] == "exceeded"
    assert VirtualKey.objects.get(pk=key.pk).status == "blocked"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"extra_amount": "5", "expires_at": "2000-01-01T00:00:00Z", "reason": "x"}, "expires_at"),
        ({"extra_amount": "0", "expires_at": "2099-01-01T00:00:00Z", "reason": "x"}, "extra_amount"),
        ({"extra_amount": "5", "expires_at": "2099-01-01T00:00:00Z", "reason": " "}, "reason"),
        ({"extra_amount": "5", "reason": "x"}, "expires_at"),
    ],
)
def test_a_bad_override_is_a_400_naming_the_field(admin_api, body, field):
    budget = admin_api.post("/api/v1/budgets/", {"scope_type": "organization", "amount": "10"}, format="json").json()
    response = admin_api.post(f"/api/v1/budgets/{budget['id']}/override/", body, format="json")
    assert response.status_code == 400 and field in str(response.json()), response.content


@pytest.mark.parametrize(
    ("change", "field"),
    [({"period": "daily"}, "period"), ({"timezone": "Asia/Tokyo"}, "timezone"), ({"currency": "EUR"}, "currency")],
)
def test_changes_a_budget_cannot_take_are_400s(admin_api, change, field):
    budget = admin_api.post("/api/v1/budgets/", {"scope_type": "organization", "amount": "10"}, format="json").json()
    response = admin_api.patch(f"/api/v1/budgets/{budget['id']}/", change, format="json")
    assert response.status_code == 400 and field in str(response.json()), response.content


def test_periods_list_the_history(admin_api):
    customer = make_customer()
    budget = admin_api.post(
        "/api/v1/budgets/",
        {"scope_type": "customer", "scope_id": customer.pk, "amount": "10", "period": "daily"},
        format="json",
    ).json()
    now = timezone.now()
    charge_spend(
        charges=[
            SpendCharge(now, Decimal("1"), customer.pk, None, None),
            SpendCharge(now - timedelta(days=1), Decimal("2"), customer.pk, None, None),
            SpendCharge(now - timedelta(days=3), Decimal("3"), customer.pk, None, None),
        ]
    )
    periods = admin_api.get(f"/api/v1/budgets/{budget['id']}/periods/").json()["results"]
    assert [p["spent"] for p in periods] == ["1.0000", "2.0000", "3.0000"]


def test_alerts_list_with_their_deliveries_and_filters(admin_api, client_for):
    customer = make_customer()
    channel = admin_api.post(
        "/api/v1/alert-channels/", {"kind": "email", "target": "ops@example.com"}, format="json"
    ).json()
    budget = admin_api.post(
        "/api/v1/budgets/", {"scope_type": "customer", "scope_id": customer.pk, "amount": "10"}, format="json"
    ).json()
    charge_spend(charges=[SpendCharge(timezone.now(), Decimal("11"), customer.pk, None, None)])

    listed = client_for("finance").get(f"/api/v1/alerts/?budget={budget['id']}").json()["results"]

    assert sorted((a["kind"], a["threshold"]) for a in listed) == [("hard", 100), ("soft", 50), ("soft", 80)]
    hard = next(a for a in listed if a["kind"] == "hard")
    assert hard["period_start"] and hard["spent"] == "11.0000" and hard["limit"] == "10.0000"
    assert [(d["channel"], d["channel_kind"], d["state"]) for d in hard["deliveries"]] == [
        (channel["id"], "email", "pending")
    ]
    assert len(admin_api.get("/api/v1/alerts/?kind=soft").json()["results"]) == 2
    assert admin_api.get("/api/v1/alerts/?since=2099-01-01T00:00:00Z").json()["results"] == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "webhook", "target": "not a url"}, "target"),
        ({"kind": "webhook", "target": "ftp://example.com/x"}, "target"),
        ({"kind": "webhook", "target": "https://example.com/x", "secret": "short"}, "secret"),
        ({"kind": "slack", "target": "http://hooks.slack.com/services/a/b/c"}, "target"),
        ({"kind": "email", "target": "nobody"}, "target"),
        ({"kind": "email", "target": "a@example.com", "secret": "0123456789abcdef0"}, "secret"),
        ({"kind": "pager", "target": "x"}, "kind"),
        ({"kind": "email", "target": "a@example.com", "scope_type": "customer", "scope_id": 999999}, "scope_id"),
    ],
)
def test_a_bad_channel_is_a_400_naming_the_field(admin_api, body, field):
    response = admin_api.post("/api/v1/alert-channels/", body, format="json")
    assert response.status_code == 400 and field in str(response.json()), response.content


def test_a_channel_secret_is_shown_once_and_a_slack_url_never(admin_api):
    hook = admin_api.post(
        "/api/v1/alert-channels/", {"kind": "webhook", "target": "https://example.com/h"}, format="json"
    )
    assert hook.status_code == 201 and hook.json()["secret"].startswith("whsec_")
    assert "secret" not in admin_api.get(f"/api/v1/alert-channels/{hook.json()['id']}/").json()
    slack = admin_api.post(
        "/api/v1/alert-channels/",
        {"kind": "slack", "target": "https://hooks.slack.com/services/T01/B02/verysecretpart"},
        format="json",
    ).json()
    assert "verysecretpart" not in str(slack) and slack["target"] == "https://hooks.slack.com/services/T01/B02/…"
    changed = admin_api.patch(f"/api/v1/alert-channels/{slack['id']}/", {"target": "https://x.example"}, format="json")
    assert changed.status_code == 400 and "target" in str(changed.json())

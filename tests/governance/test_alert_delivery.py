"""Alert channels against real HTTP servers on loopback: signature, retries, give-up."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection, transaction

from governance.models import Alert, AlertDelivery, AuditEntry
from governance.services.alerts import AlertDraft, attempt_delivery, create_alert_channel, fire_alert
from governance.services.spend import SpendCharge, charge_spend
from tests.factories import ACTOR, make_budget, make_customer, make_team

NOW = datetime(2026, 12, 16, 12, 0, tzinfo=UTC)
SECRET = "whsec_test_secret_0123456789"


@pytest.fixture(autouse=True)
def _no_forecasts(settings):
    settings.BUDGET_FORECAST_MIN_ELAPSED_PERCENT = 100


def cross_50_percent(customer):
    budget = make_budget(scope_type="customer", scope_id=customer.pk, soft_thresholds=[50], now=NOW)
    charge_spend(charges=[SpendCharge(NOW, Decimal("60"), customer.pk, None, None)], now=NOW)
    return budget


@pytest.mark.django_db
def test_a_webhook_gets_the_alert_signed_with_the_channel_secret(receiver):
    customer = make_customer(external_id="signed")
    create_alert_channel(actor=ACTOR, kind="webhook", target=f"{receiver.url}/hooks/bursar", secret=SECRET)
    budget = cross_50_percent(customer)
    delivery = AlertDelivery.objects.get()

    outcome = attempt_delivery(delivery_id=delivery.pk, now=NOW)

    assert outcome.state == "delivered"
    [request] = receiver.requests
    assert request.method == "POST" and request.path == "/hooks/bursar"
    expected = "sha256=" + hmac.new(SECRET.encode(), request.body, hashlib.sha256).hexdigest()
    assert request.headers["X-Bursar-Signature"] == expected
    assert request.headers["X-Bursar-Event"] == "budget.alert.soft"
    assert request.headers["X-Bursar-Delivery"] == str(delivery.pk)
    body = json.loads(request.body)
    assert body["kind"] == "soft" and body["threshold"] == 50 and body["budget"]["id"] == budget.pk
    assert body["period"] == {
        "start": "2026-12-01T00:00:00Z",
        "end": "2027-01-01T00:00:00Z",
        "spent": "60.0000",
        "limit": "100.0000",
        "percent_used": "60.00",
    }
    delivery.refresh_from_db()
    assert (delivery.attempts, delivery.delivered_at) == (1, NOW)
    assert [(a.number, a.succeeded, a.status_code) for a in delivery.attempt_log.all()] == [(1, True, 200)]


@pytest.mark.django_db
def test_a_failing_webhook_is_retried_with_backoff_and_every_attempt_recorded(receiver):
    receiver.script = [500, 503]
    create_alert_channel(actor=ACTOR, kind="webhook", target=receiver.url, secret=SECRET)
    cross_50_percent(make_customer())
    delivery = AlertDelivery.objects.get()

    first = attempt_delivery(delivery_id=delivery.pk, now=NOW)
    assert (
        first.state == "pending"
        and first.retry_in is not None
        and timedelta(seconds=8) <= first.retry_in <= timedelta(seconds=12)
    )
    early = attempt_delivery(delivery_id=delivery.pk, now=NOW + timedelta(seconds=5))
    assert early.attempt is None  # not due yet: nothing sent
    second = attempt_delivery(delivery_id=delivery.pk, now=NOW + timedelta(seconds=13))
    assert (
        second.state == "pending"
        and second.retry_in is not None
        and timedelta(seconds=16) <= second.retry_in <= timedelta(seconds=24)
    )
    third = attempt_delivery(delivery_id=delivery.pk, now=NOW + timedelta(minutes=5))

    assert third.state == "delivered" and len(receiver.requests) == 3
    assert receiver.requests[0].body == receiver.requests[2].body  # the same signed payload each time
    log = [(a.number, a.succeeded, a.status_code, a.error) for a in AlertDelivery.objects.get().attempt_log.all()]
    assert log == [(1, False, 500, "HTTP 500"), (2, False, 503, "HTTP 503"), (3, True, 200, "")]


@pytest.mark.django_db
def test_delivery_gives_up_after_the_last_attempt(receiver, settings):
    settings.ALERT_DELIVERY_MAX_ATTEMPTS = 2
    receiver.default_status = 500
    create_alert_channel(actor=ACTOR, kind="webhook", target=receiver.url, secret=SECRET)
    cross_50_percent(make_customer())
    delivery = AlertDelivery.objects.get()

    attempt_delivery(delivery_id=delivery.pk, now=NOW)
    outcome = attempt_delivery(delivery_id=delivery.pk, now=NOW + timedelta(hours=1))

    assert outcome.state == "failed" and outcome.retry_in is None
    assert attempt_delivery(delivery_id=delivery.pk, now=NOW + timedelta(days=1)).attempt is None


@pytest.mark.django_db
def test_a_hanging_receiver_times_out_as_a_failed_attempt(receiver, settings):
    settings.ALERT_DELIVERY_TIMEOUT_SECONDS = 1
    receiver.delay_seconds = 3
    create_alert_channel(actor=ACTOR, kind="webhook", target=receiver.url, secret=SECRET)
    cross_50_percent(make_customer())

    outcome = attempt_delivery(delivery_id=AlertDelivery.objects.get().pk, now=NOW)

    assert outcome.state == "pending"
    assert "Timeout" in AlertDelivery.objects.get().last_error


@pytest.mark.django_db
def test_slack_gets_a_readable_message_and_its_url_stays_secret(receiver):
    slack_url = f"{receiver.url}/services/T0001/B0001/slack-url-secret"
    created = create_alert_channel(actor=ACTOR, kind="slack", target=slack_url.replace("http://", "https://"))
    # The loopback server speaks plain HTTP; the stored URL is what a test can reach.
    from governance.crypto import encrypt

    created.channel.secret_encrypted = encrypt(slack_url)
    created.channel.save()
    cross_50_percent(make_customer(external_id="slacked"))

    attempt_delivery(delivery_id=AlertDelivery.objects.get().pk, now=NOW)

    text = json.loads(receiver.requests[0].body)["text"]
    assert "50% threshold crossed" in text and "customer slacked" in text
    assert created.channel.target.endswith("/B0001/…") and "slack-url-secret" not in created.channel.target
    assert "slack-url-secret" not in json.dumps(list(AuditEntry.objects.values("before", "after")))


@pytest.mark.django_db
def test_email_goes_through_the_django_mail_backend(mailoutbox):
    create_alert_channel(actor=ACTOR, kind="email", target="finance@example.com, ops@example.com")
    cross_50_percent(make_customer(external_id="mailed"))

    attempt_delivery(delivery_id=AlertDelivery.objects.get().pk, now=NOW)

    [mail] = mailoutbox
    assert mail.to == ["finance@example.com", "ops@example.com"]
    assert "soft alert" in mail.subject and "customer mailed" in mail.body


@pytest.mark.django_db
def test_channels_hear_their_own_scope_and_below_plus_global_ones(receiver):
    acme, globex = make_customer(), make_customer()
    team = make_team(customer=acme)
    everyone = create_alert_channel(actor=ACTOR, kind="webhook", target=receiver.url, secret=SECRET).channel
    acme_channel = create_alert_channel(
        actor=ACTOR, kind="webhook", target=receiver.url, secret=SECRET, scope_type="customer", scope_id=acme.pk
    ).channel
    create_alert_channel(
        actor=ACTOR, kind="webhook", target=receiver.url, secret=SECRET, scope_type="customer", scope_id=globex.pk
    )
    create_alert_channel(actor=ACTOR, kind="email", target="off@example.com", enabled=False)
    budget = make_budget(scope_type="team", scope_id=team.pk, soft_thresholds=[50], now=NOW)

    charge_spend(charges=[SpendCharge(NOW, Decimal("60"), acme.pk, team.pk, None)], now=NOW)

    delivered_to = set(AlertDelivery.objects.filter(alert__budget=budget).values_list("channel_id", flat=True))
    assert delivered_to == {everyone.pk, acme_channel.pk}


@pytest.mark.django_db
def test_a_webhook_without_a_secret_gets_one_shown_once():
    created = create_alert_channel(actor=ACTOR, kind="webhook", target="https://example.com/hook")
    assert created.secret.startswith("whsec_") and len(created.secret) > 30
    assert created.secret not in created.channel.secret_encrypted
    assert created.secret not in json.dumps(list(AuditEntry.objects.values("before", "after")))


@pytest.mark.django_db(transaction=True)
def test_two_workers_claiming_the_same_threshold_fire_it_once():
    """The claim is the insert: concurrent transactions racing for the same (period,
    kind, threshold) leave exactly one alert, whichever commits first."""
    if connection.vendor != "postgresql":
        pytest.fail("the concurrency test needs PostgreSQL")
    customer = make_customer()
    budget = make_budget(scope_type="customer", scope_id=customer.pk, soft_thresholds=[], now=NOW)
    charge_spend(charges=[SpendCharge(NOW, Decimal("1"), customer.pk, None, None)], now=NOW)
    period = budget.periods.get()
    workers = 8
    barrier = threading.Barrier(workers)
    fired: list[bool] = []

    def race() -> None:
        try:
            barrier.wait(timeout=10)
            with transaction.atomic():
                draft = AlertDraft(budget, period.pk, period.start, period.end, "soft", 50, Decimal(1), Decimal(2), "x")
                fired.append(fire_alert(draft, now=NOW) is not None)
        finally:
            connection.close()

    threads = [threading.Thread(target=race) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(fired) == [False] * (workers - 1) + [True]
    assert Alert.objects.filter(budget=budget, kind="soft", threshold=50).count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_workers_charging_one_budget_lose_no_update():
    """Eight workers, 25 transactions each, all charging the same period at once: the
    SQL increments serialise on the row, so the total is exact and each threshold fires
    once."""
    if connection.vendor != "postgresql":
        pytest.fail("the concurrency test needs PostgreSQL")
    customer = make_customer()
    budget = make_budget(scope_type="customer", scope_id=customer.pk, soft_thresholds=[25, 50, 75], now=NOW)
    workers, rounds = 8, 25
    barrier = threading.Barrier(workers)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            barrier.wait(timeout=10)
            for _ in range(rounds):
                with transaction.atomic():
                    charge_spend(charges=[SpendCharge(NOW, Decimal("0.5"), customer.pk, None, None)], now=NOW)
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=work) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert budget.periods.get().spent == Decimal("100")  # 8 x 25 x 0.5
    kinds = sorted(Alert.objects.filter(budget=budget).values_list("kind", "threshold"))
    assert kinds == [("hard", 100), ("soft", 25), ("soft", 50), ("soft", 75)]

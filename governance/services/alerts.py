"""Alerts: firing them once, the channels they go to, and delivering them.

An alert is claimed by inserting its row: a partial unique constraint on (period, kind,
threshold) among armed alerts makes the insert the conditional write, so two workers
crossing the same threshold cannot both fire it. Deliveries are rows too (one per alert
and channel), sent after the firing transaction commits, each attempt recorded; a failed
channel is retried with backoff and never holds up ingest or enforcement.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.core.validators import EmailValidator, URLValidator
from django.db import IntegrityError, transaction
from django.db.models import Q

from bursar.errors import InvalidInput
from governance.actors import Actor
from governance.budget_state import percent_of
from governance.crypto import decrypt, encrypt
from governance.models import (
    Alert,
    AlertChannel,
    AlertChannelKind,
    AlertDelivery,
    AlertDeliveryAttempt,
    Budget,
    BudgetScope,
    DeliveryState,
    VirtualKey,
)
from governance.secrets import generate_secret
from governance.services._changes import lock_for_update, save_changes
from governance.services._scopes import scope_kwargs
from governance.services.audit import record_audit, snapshot

logger = logging.getLogger("bursar.alerts")
CHANNEL_FIELDS = ("name", "kind", "target", "scope_type", "customer", "team", "virtual_key", "enabled")
_SCOPE_FIELDS = {BudgetScope.CUSTOMER: "customer", BudgetScope.TEAM: "team", BudgetScope.VIRTUAL_KEY: "virtual_key"}
BACKOFF_FIRST = timedelta(seconds=10)
BACKOFF_MAX = timedelta(minutes=15)


# --- firing -------------------------------------------------------------------------------


@dataclass(frozen=True)
class AlertDraft:
    budget: Budget
    period_id: int
    period_start: datetime
    period_end: datetime
    kind: str
    threshold: int
    spent: Decimal
    limit: Decimal
    message: str
    projected_at: datetime | None = None


def fire_alert(draft: AlertDraft, *, now: datetime) -> Alert | None:
    """Create the alert unless an armed one for the same period, kind and threshold
    exists; queue its deliveries after commit. Returns None when it was already fired.

    Side effects: an Alert row and one AlertDelivery per matching channel.
    """
    try:
        with transaction.atomic():  # a savepoint: a lost claim leaves the caller's transaction intact
            alert = Alert.objects.create(
                budget=draft.budget,
                period_id=draft.period_id,
                kind=draft.kind,
                threshold=draft.threshold,
                fired_at=now,
                spent=draft.spent,
                limit=draft.limit,
                projected_at=draft.projected_at,
                message=draft.message,
            )
    except IntegrityError:
        return None
    channels = channels_for_budget(draft.budget)
    deliveries = AlertDelivery.objects.bulk_create(
        [AlertDelivery(alert=alert, channel=channel, next_attempt_at=now) for channel in channels]
    )
    logger.info(
        "alert fired",
        extra={"alert_id": alert.pk, "budget_id": draft.budget.pk, "kind": draft.kind, "threshold": draft.threshold},
    )
    ids = [delivery.pk for delivery in deliveries]
    if ids:
        transaction.on_commit(lambda: _enqueue_deliveries(ids), robust=True)
    return alert


def armed_alert_exists(*, period_id: int, kind: str, threshold: int) -> bool:
    return Alert.objects.filter(period_id=period_id, kind=kind, threshold=threshold, rearmed_at__isnull=True).exists()


def rearm_alerts(*, period_id: int, keep: set[tuple[str, int]], now: datetime) -> int:
    """Re-arm every armed soft, hard and forecast alert of the period except ``keep``
    (the (kind, threshold) pairs whose condition still holds), so they can fire again.

    Side effects: sets ``rearmed_at`` on those Alert rows.
    """
    candidates = Alert.objects.filter(
        period_id=period_id, rearmed_at__isnull=True, kind__in=["soft", "hard", "forecast"]
    ).values_list("pk", "kind", "threshold")
    ids = [pk for pk, kind, threshold in candidates if (kind, threshold) not in keep]
    return Alert.objects.filter(pk__in=ids).update(rearmed_at=now) if ids else 0


def channels_for_budget(budget: Budget) -> list[AlertChannel]:
    """Enabled global channels and those attached to the budget's scope or above it
    (key → its team → its customer)."""
    scope = Q(scope_type=BudgetScope.ORGANIZATION)
    customer_id, team_id = budget.customer_id, budget.team_id
    if budget.virtual_key_id:
        scope |= Q(virtual_key_id=budget.virtual_key_id)
        owner = VirtualKey.objects.filter(pk=budget.virtual_key_id).values_list("team_id", "customer_id").first()
        team_id, customer_id = owner if owner else (None, None)
    if team_id:
        scope |= Q(team_id=team_id)
        if customer_id is None and budget.team is not None:
            customer_id = budget.team.customer_id
    if customer_id:
        scope |= Q(customer_id=customer_id)
    return list(AlertChannel.objects.filter(scope, enabled=True).order_by("pk"))


def _enqueue_deliveries(delivery_ids: list[int]) -> None:
    from governance.tasks import deliver_alert_task  # tasks import services, not the reverse

    for delivery_id in delivery_ids:
        try:
            deliver_alert_task.delay(delivery_id)
        except Exception:  # a broker outage: the retry sweeper sends it later
            logger.warning("alert delivery not queued; the sweeper will retry", extra={"delivery_id": delivery_id})


# --- channels -----------------------------------------------------------------------------


@dataclass(frozen=True)
class CreatedChannel:
    channel: AlertChannel
    secret: str  # the webhook signing secret, shown once; "" for other kinds


def _validate_target(kind: str, target: str) -> str:
    target = target.strip()
    if kind in (AlertChannelKind.WEBHOOK, AlertChannelKind.SLACK):
        try:
            URLValidator(schemes=["http", "https"])(target)
        except ValidationError:
            raise InvalidInput("must be an http(s) URL", field="target") from None
        if kind == AlertChannelKind.SLACK and not target.startswith("https://"):
            raise InvalidInput("a Slack incoming webhook URL starts with https://", field="target")
        return target
    addresses = [part.strip() for part in target.split(",") if part.strip()]
    if not addresses or len(addresses) > 20:
        raise InvalidInput("one to twenty email addresses, separated by commas", field="target")
    for address in addresses:
        try:
            EmailValidator()(address)
        except ValidationError:
            raise InvalidInput(f"{address!r} is not an email address", field="target") from None
    return ", ".join(addresses)


def _redacted_slack_url(url: str) -> str:
    # https://hooks.slack.com/services/T000/B000/XXXX: the last part is the credential.
    head, _, _ = url.rstrip("/").rpartition("/")
    return f"{head}/…" if head.count("/") > 2 else "(hidden)"


@transaction.atomic
def create_alert_channel(
    *,
    actor: Actor,
    kind: str,
    target: str,
    secret: str = "",
    name: str = "",
    scope_type: str = BudgetScope.ORGANIZATION,
    scope_id: int | None = None,
    enabled: bool = True,
) -> CreatedChannel:
    """Add a channel. A webhook without a secret gets a generated one (returned once);
    a Slack URL is stored encrypted and shown redacted.

    Side effects: one AlertChannel row, one AuditEntry (never the secret or Slack URL).
    """
    target = _validate_target(kind, target)
    shown = ""
    stored_secret = ""
    if kind == AlertChannelKind.WEBHOOK:
        shown = secret or generate_secret("whsec_").value
        stored_secret = shown
        if len(stored_secret) < 16:
            raise InvalidInput("use at least 16 characters (or leave it out to get one)", field="secret")
    elif secret:
        raise InvalidInput(f"a {kind} channel takes no secret", field="secret")
    if kind == AlertChannelKind.SLACK:
        stored_secret, target = target, _redacted_slack_url(target)
    channel = AlertChannel(
        name=name,
        kind=kind,
        target=target,
        secret_encrypted=encrypt(stored_secret),
        scope_type=scope_type,
        enabled=enabled,
        **scope_kwargs(scope_type, scope_id),
    )
    channel.full_clean()
    channel.save()
    after = snapshot(channel, CHANNEL_FIELDS)
    record_audit(actor=actor, action="alert_channel.create", instance=channel, before=None, after=after)
    return CreatedChannel(channel=channel, secret=shown if not secret else "")


@transaction.atomic
def update_alert_channel(*, actor: Actor, channel: AlertChannel, changes: dict[str, Any]) -> AlertChannel:
    """Rename, enable or disable a channel (to change where it points, make a new one).

    Side effects: updates the row; one AuditEntry when something changed.
    """
    fixed = sorted(set(changes) - {"name", "enabled"})
    if fixed:
        raise InvalidInput("only name and enabled can change; create a new channel instead", field=fixed[0])
    lock_for_update(channel)
    save_changes(
        actor=actor, action="alert_channel.update", instance=channel, changes=changes, audited_fields=CHANNEL_FIELDS
    )
    return channel


@transaction.atomic
def delete_alert_channel(*, actor: Actor, channel: AlertChannel) -> None:
    """Side effects: deletes the channel and its delivery records; one AuditEntry."""
    before = snapshot(channel, CHANNEL_FIELDS)
    record_audit(actor=actor, action="alert_channel.delete", instance=channel, before=before, after=None)
    channel.delete()


# --- delivery -----------------------------------------------------------------------------


def alert_payload(alert: Alert) -> dict[str, Any]:
    """The JSON a webhook receives (and the facts the other channels phrase)."""
    budget = alert.budget
    return {
        "id": alert.pk,
        "type": f"budget.alert.{alert.kind}",
        "kind": alert.kind,
        "threshold": alert.threshold,
        "fired_at": alert.fired_at.isoformat().replace("+00:00", "Z"),
        "message": alert.message,
        "budget": {
            "id": budget.pk,
            "scope_type": budget.scope_type,
            "scope_id": budget.scope_id,
            "amount": str(budget.amount),
            "currency": budget.currency,
            "period": budget.period,
            "timezone": budget.timezone,
            "hard_cap": budget.hard_cap,
        },
        "period": {
            "start": alert.period.start.isoformat().replace("+00:00", "Z"),
            "end": alert.period.end.isoformat().replace("+00:00", "Z"),
            "spent": str(alert.spent.quantize(Decimal("0.0001"))),
            "limit": str(alert.limit),
            "percent_used": str(percent_of(alert.spent, alert.limit)),
        },
        "projected_at": alert.projected_at.isoformat().replace("+00:00", "Z") if alert.projected_at else None,
    }


def sign(body: bytes, secret: str) -> str:
    """The ``X-Bursar-Signature`` value: HMAC-SHA256 of the exact body bytes."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class SendResult:
    ok: bool
    status_code: int | None = None
    error: str = ""


def _post(url: str, body: bytes, headers: dict[str, str]) -> SendResult:
    try:
        response = httpx.post(
            url,
            content=body,
            headers={"Content-Type": "application/json", "User-Agent": "Bursar-Alerts/1", **headers},
            timeout=settings.ALERT_DELIVERY_TIMEOUT_SECONDS,
            follow_redirects=False,
        )
    except httpx.HTTPError as exc:
        return SendResult(ok=False, error=f"{type(exc).__name__}: {exc}"[:500])
    if 200 <= response.status_code < 300:
        return SendResult(ok=True, status_code=response.status_code)
    return SendResult(ok=False, status_code=response.status_code, error=f"HTTP {response.status_code}")


def _send(channel: AlertChannel, alert: Alert, delivery: AlertDelivery) -> SendResult:
    if channel.kind == AlertChannelKind.WEBHOOK:
        body = json.dumps(alert_payload(alert), separators=(",", ":"), sort_keys=True).encode()
        headers = {
            "X-Bursar-Signature": sign(body, decrypt(channel.secret_encrypted)),
            "X-Bursar-Event": f"budget.alert.{alert.kind}",
            "X-Bursar-Delivery": str(delivery.pk),
        }
        return _post(channel.target, body, headers)
    if channel.kind == AlertChannelKind.SLACK:
        url = decrypt(channel.secret_encrypted)
        if not url:
            return SendResult(ok=False, error="the Slack URL cannot be decrypted (CREDENTIALS_KEY changed?)")
        text = f":rotating_light: *Bursar budget alert ({alert.kind})*\n{alert.message}"
        return _post(url, json.dumps({"text": text}).encode(), {})
    recipients = [address.strip() for address in channel.target.split(",")]
    subject = f"[Bursar] budget {alert.budget_id}: {alert.kind} alert"
    try:
        send_mail(subject, alert.message, settings.DEFAULT_FROM_EMAIL, recipients, fail_silently=False)
    except Exception as exc:  # SMTP and backend errors vary; every one is a failed attempt
        return SendResult(ok=False, error=f"{type(exc).__name__}: {exc}"[:500])
    return SendResult(ok=True)


def backoff(attempt: int) -> timedelta:
    """Delay before attempt ``attempt + 1``: doubling from 10 s, capped, with ±20% jitter."""
    base = min(BACKOFF_FIRST * (2 ** (attempt - 1)), BACKOFF_MAX)
    return timedelta(seconds=base.total_seconds() * random.uniform(0.8, 1.2))  # noqa: S311 - jitter, not security


@dataclass(frozen=True)
class AttemptOutcome:
    state: str
    attempt: int | None = None  # None: not claimed (another worker has it, or it is done)
    retry_in: timedelta | None = None


def attempt_delivery(*, delivery_id: int, now: datetime) -> AttemptOutcome:
    """Make one attempt at a due delivery and record it.

    The delivery is claimed with a conditional UPDATE (due and pending), which also
    pushes ``next_attempt_at`` past the timeout as a lease: a second worker or the
    sweeper skips it, and one that dies mid-send leaves it due again later.
    Side effects: the AlertDelivery row, one AlertDeliveryAttempt row, one HTTP request
    or email.
    """
    lease = now + timedelta(seconds=settings.ALERT_DELIVERY_TIMEOUT_SECONDS + 30)
    claimed = AlertDelivery.objects.filter(
        pk=delivery_id, state=DeliveryState.PENDING, next_attempt_at__lte=now
    ).update(next_attempt_at=lease)
    delivery = AlertDelivery.objects.select_related("alert__budget", "alert__period", "channel").get(pk=delivery_id)
    if not claimed:
        return AttemptOutcome(state=delivery.state)
    started = time.perf_counter()
    result = _send(delivery.channel, delivery.alert, delivery)
    duration_ms = round((time.perf_counter() - started) * 1000)
    number = delivery.attempts + 1
    with transaction.atomic():
        AlertDeliveryAttempt.objects.create(
            delivery=delivery,
            number=number,
            at=now,
            succeeded=result.ok,
            status_code=result.status_code,
            error=result.error,
            duration_ms=duration_ms,
        )
        delivery.attempts = number
        delivery.last_error = result.error
        retry_in = None
        if result.ok:
            delivery.state, delivery.delivered_at, delivery.next_attempt_at = DeliveryState.DELIVERED, now, None
        elif number >= settings.ALERT_DELIVERY_MAX_ATTEMPTS:
            delivery.state, delivery.next_attempt_at = DeliveryState.FAILED, None
        else:
            retry_in = backoff(number)
            delivery.next_attempt_at = now + retry_in
        delivery.save(update_fields=["attempts", "last_error", "state", "delivered_at", "next_attempt_at"])
    log = logger.info if result.ok else logger.warning
    log(
        "alert delivery attempt",
        extra={
            "delivery_id": delivery.pk,
            "channel_id": delivery.channel_id,
            "attempt": number,
            "ok": result.ok,
            "status_code": result.status_code,
            "error": result.error,
        },
    )
    return AttemptOutcome(state=delivery.state, attempt=number, retry_in=retry_in)


def due_deliveries(*, now: datetime, limit: int = 500) -> list[int]:
    return list(
        AlertDelivery.objects.filter(state=DeliveryState.PENDING, next_attempt_at__lte=now)
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )

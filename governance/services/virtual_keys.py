"""Writes for virtual keys: issue, change, rotate, revoke, expire."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction

from bursar.errors import Conflict, InvalidInput
from governance.actors import Actor
from governance.crypto import encrypt
from governance.models import Customer, Team, VirtualKey, VirtualKeyStatus
from governance.secrets import generate_secret, sha256_hex
from governance.services._changes import lock_for_update, save_changes
from governance.services.audit import record_audit, snapshot
from governance.services.config import request_render
from governance.services.enforcement import notify_desired_state_changed, refresh_key_blocks

KEY_FIELDS = (
    "public_id",
    "name",
    "team",
    "customer",
    "secret_prefix",
    "allowed_models",
    "requests_per_minute",
    "tokens_per_minute",
    "status",
    "expires_at",
    "revoked_at",
)
MAX_GRACE = timedelta(days=30)
# "openai/gpt-4o-mini", "anthropic/*", "*", "openai/gpt-4o*": a trailing * is a prefix match.
_MODEL_PATTERN = re.compile(r"^(\*|[A-Za-z0-9][\w.\-:@]*(/[\w.\-:@/]*\*?|/\*)?)$")


@dataclass(frozen=True)
class IssuedSecret:
    """A key together with its secret, which is shown to the caller once and never stored."""

    key: VirtualKey
    secret: str


def normalise_allowed_models(patterns: list[str]) -> list[str]:
    """Validated, de-duplicated model patterns in their given order; empty allows every model."""
    cleaned: list[str] = []
    for pattern in patterns:
        value = pattern.strip() if isinstance(pattern, str) else ""
        if not _MODEL_PATTERN.match(value) or value.count("*") > 1:
            raise InvalidInput(
                f"{pattern!r} is not a model pattern: use provider/model, provider/* or a trailing *",
                field="allowed_models",
            )
        if value not in cleaned:
            cleaned.append(value)
    return cleaned


def _resolve_owner(team: Team | None, customer: Customer | None) -> Customer | None:
    """A key of a customer's team belongs to that customer; naming another one is an error."""
    if team is not None and team.customer_id is not None:
        if customer is not None and customer.pk != team.customer_id:
            raise InvalidInput(
                f"team {team.slug!r} works for another customer; leave customer empty or name that one",
                field="customer",
            )
        return team.customer
    return customer


def _new_public_id() -> str:
    return f"vk_{secrets.token_hex(6)}"


@transaction.atomic
def issue_virtual_key(
    *,
    actor: Actor,
    name: str,
    now: datetime,
    team: Team | None = None,
    customer: Customer | None = None,
    allowed_models: list[str] | None = None,
    requests_per_minute: int | None = None,
    tokens_per_minute: int | None = None,
    expires_at: datetime | None = None,
) -> IssuedSecret:
    """Issue a key; the returned secret is the only copy there will ever be. A key
    issued into a scope already over a hard cap starts blocked.

    Side effects: one VirtualKey row, one AuditEntry; blocks as the budgets require.
    """
    if expires_at is not None and expires_at <= now:
        raise InvalidInput("must be in the future", field="expires_at")
    secret = generate_secret("vk_")
    key = VirtualKey(
        public_id=_new_public_id(),
        name=name,
        team=team,
        customer=_resolve_owner(team, customer),
        secret_prefix=secret.prefix,
        secret_sha256=secret.sha256,
        secret_encrypted=encrypt(secret.value),
        litellm_sha256=sha256_hex(f"sk-{secret.value}"),
        allowed_models=normalise_allowed_models(allowed_models or []),
        requests_per_minute=requests_per_minute,
        tokens_per_minute=tokens_per_minute,
        expires_at=expires_at,
    )
    key.full_clean(validate_unique=False)
    key.save()
    record_audit(actor=actor, action="virtual_key.issue", instance=key, before=None, after=snapshot(key, KEY_FIELDS))
    refresh_key_blocks(key, now=now)
    notify_desired_state_changed(reason=f"key {key.public_id} issued")
    return IssuedSecret(key=key, secret=secret.value)


@transaction.atomic
def update_virtual_key(*, actor: Actor, key: VirtualKey, changes: dict[str, Any], now: datetime) -> VirtualKey:
    """Change a key's name, owner, allowed models, rate limit or expiry.

    Side effects: updates the VirtualKey row; one AuditEntry when something changed.
    """
    request_render()  # lock order: the render mark before the key (enforcement._lock_keys)
    lock_for_update(key)
    _refuse_if_revoked(key)
    changes = dict(changes)
    if "allowed_models" in changes:
        changes["allowed_models"] = normalise_allowed_models(changes["allowed_models"] or [])
    if "expires_at" in changes and changes["expires_at"] is not None and changes["expires_at"] <= now:
        raise InvalidInput("must be in the future", field="expires_at")
    if "team" in changes or "customer" in changes:
        team = changes.get("team", key.team)
        customer = changes["customer"] if "customer" in changes else (None if "team" in changes else key.customer)
        changes["customer"] = _resolve_owner(team, customer)
    if key.status == VirtualKeyStatus.EXPIRED and changes.get("expires_at", key.expires_at) != key.expires_at:
        # Extending an expired key's expiry brings it back.
        changes["status"] = VirtualKeyStatus.BLOCKED if key.blocked_by.exists() else VirtualKeyStatus.ACTIVE
    before = snapshot(key, KEY_FIELDS)
    save_changes(actor=actor, action="virtual_key.update", instance=key, changes=changes, audited_fields=KEY_FIELDS)
    if snapshot(key, KEY_FIELDS) != before:
        if "team" in changes or "customer" in changes:
            refresh_key_blocks(key, now=now)  # moved into a scope over its cap
        notify_desired_state_changed(reason=f"key {key.public_id} changed")
    return key


@transaction.atomic
def rotate_virtual_key(*, actor: Actor, key: VirtualKey, grace: timedelta, now: datetime) -> IssuedSecret:
    """Give a key a new secret; the old one keeps working for ``grace``.

    Side effects: updates the VirtualKey row; one AuditEntry.
    """
    request_render()  # lock order: the render mark before the key (enforcement._lock_keys)
    lock_for_update(key)
    _refuse_if_revoked(key)
    if grace < timedelta(0) or grace > MAX_GRACE:
        raise InvalidInput(f"must be between 0 and {int(MAX_GRACE.total_seconds())} seconds", field="grace_seconds")
    before = snapshot(key, KEY_FIELDS)
    secret = generate_secret("vk_")
    if grace > timedelta(0):
        key.previous_secret_sha256 = key.secret_sha256
        key.previous_litellm_sha256 = key.litellm_sha256
        key.previous_secret_encrypted = key.secret_encrypted
        key.previous_secret_expires_at = now + grace
    else:
        key.previous_secret_sha256 = key.previous_litellm_sha256 = ""
        key.previous_secret_encrypted = ""
        key.previous_secret_expires_at = None
    key.secret_sha256 = secret.sha256
    key.secret_encrypted = encrypt(secret.value)
    key.litellm_sha256 = sha256_hex(f"sk-{secret.value}")
    key.secret_prefix = secret.prefix
    key.rotated_at = now
    try:
        with transaction.atomic():
            key.save(
                update_fields=[
                    "previous_secret_sha256",
                    "previous_litellm_sha256",
                    "previous_secret_encrypted",
                    "previous_secret_expires_at",
                    "secret_sha256",
                    "secret_encrypted",
                    "litellm_sha256",
                    "secret_prefix",
                    "rotated_at",
                    "updated_at",
                ]
            )
    except IntegrityError:  # a 256-bit collision: practically impossible, still not a 500
        raise Conflict("could not generate a unique secret; try again") from None
    after = snapshot(key, KEY_FIELDS) | {"grace_seconds": int(grace.total_seconds())}
    record_audit(actor=actor, action="virtual_key.rotate", instance=key, before=before, after=after)
    notify_desired_state_changed(reason=f"key {key.public_id} rotated")
    return IssuedSecret(key=key, secret=secret.value)


@transaction.atomic
def revoke_virtual_key(*, actor: Actor, key: VirtualKey, now: datetime) -> VirtualKey:
    """Revoke a key for good; revoking a revoked key changes nothing.

    Side effects: updates the VirtualKey row; one AuditEntry on the first revoke.
    """
    request_render()  # lock order: the render mark before the key (enforcement._lock_keys)
    lock_for_update(key)
    if key.status == VirtualKeyStatus.REVOKED:
        return key
    before = snapshot(key, KEY_FIELDS)
    key.status = VirtualKeyStatus.REVOKED
    key.revoked_at = now
    key.previous_secret_sha256 = key.previous_litellm_sha256 = ""
    key.previous_secret_expires_at = None
    key.secret_encrypted = key.previous_secret_encrypted = ""  # a revoked key is never provisioned again
    key.save(
        update_fields=[
            "status",
            "revoked_at",
            "previous_secret_sha256",
            "previous_litellm_sha256",
            "previous_secret_expires_at",
            "secret_encrypted",
            "previous_secret_encrypted",
            "updated_at",
        ]
    )
    record_audit(actor=actor, action="virtual_key.revoke", instance=key, before=before, after=snapshot(key, KEY_FIELDS))
    notify_desired_state_changed(reason=f"key {key.public_id} revoked")
    return key


def expire_virtual_keys(*, now: datetime) -> int:
    """Mark every active or blocked key whose expiry has passed as expired.

    Side effects: updates VirtualKey rows (claimed one by one with a conditional
    UPDATE, so two sweepers never both audit the same key); one AuditEntry per key.
    """
    expired = 0
    due = VirtualKey.objects.filter(
        status__in=[VirtualKeyStatus.ACTIVE, VirtualKeyStatus.BLOCKED], expires_at__lte=now
    ).order_by("pk")
    for key in due.iterator():
        with transaction.atomic():
            request_render()  # lock order: the render mark before the key (enforcement._lock_keys)
            before = snapshot(key, KEY_FIELDS)
            claimed = VirtualKey.objects.filter(pk=key.pk, status=key.status).update(
                status=VirtualKeyStatus.EXPIRED, updated_at=now
            )
            if not claimed:
                continue
            key.status = VirtualKeyStatus.EXPIRED
            record_audit(
                actor=Actor.system("expiry"),
                action="virtual_key.expire",
                instance=key,
                before=before,
                after=snapshot(key, KEY_FIELDS),
            )
            notify_desired_state_changed(reason=f"key {key.public_id} expired")
            expired += 1
    return expired


def end_grace_windows(*, now: datetime) -> int:
    """Forget previous secrets whose rotation grace window has passed, so the next
    revision drops them and gateways that hold them as keys (LiteLLM) delete them.

    Side effects: clears the previous-secret fields (conditional UPDATE); a render request.
    """
    ended = 0
    due = VirtualKey.objects.exclude(previous_secret_sha256="").filter(previous_secret_expires_at__lte=now)
    for pk, public_id in due.values_list("pk", "public_id"):
        with transaction.atomic():
            request_render()
            cleared = VirtualKey.objects.filter(pk=pk, previous_secret_expires_at__lte=now).update(
                previous_secret_sha256="",
                previous_litellm_sha256="",
                previous_secret_encrypted="",
                previous_secret_expires_at=None,
            )
            if cleared:
                notify_desired_state_changed(reason=f"key {public_id}: rotation grace window ended")
                ended += 1
    return ended


def _refuse_if_revoked(key: VirtualKey) -> None:
    if key.status == VirtualKeyStatus.REVOKED:
        raise Conflict("this key is revoked; issue a new one")

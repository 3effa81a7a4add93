"""Reads for governance objects; each sets its own joins."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Q, QuerySet

from governance.models import ApiToken, AuditEntry, Budget, Customer, Team, VirtualKey, VirtualKeyStatus
from governance.secrets import sha256_hex


def list_customers() -> QuerySet[Customer]:
    return Customer.objects.all()


def list_teams() -> QuerySet[Team]:
    return Team.objects.select_related("customer")


def list_virtual_keys() -> QuerySet[VirtualKey]:
    return VirtualKey.objects.select_related("team", "customer").prefetch_related("blocked_by")


def list_budgets() -> QuerySet[Budget]:
    return Budget.objects.select_related("customer", "team", "virtual_key")


def list_api_tokens() -> QuerySet[ApiToken]:
    return ApiToken.objects.select_related("user")


def list_audit_entries() -> QuerySet[AuditEntry]:
    return AuditEntry.objects.all()


def get_usable_api_token(*, secret: str, now: datetime) -> ApiToken | None:
    """The unrevoked, unexpired token whose secret this is, or None."""
    if not secret.startswith("bsr_"):
        return None
    return (
        ApiToken.objects.select_related("user")
        .filter(token_sha256=sha256_hex(secret), revoked_at__isnull=True)
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
        .first()
    )


def get_virtual_key_for_secret(*, secret: str, now: datetime) -> VirtualKey | None:
    """The key a presented secret opens: its current secret, or the previous one while
    the rotation grace window lasts. Status is the caller's to check."""
    digest = sha256_hex(secret)
    return (
        VirtualKey.objects.select_related("team", "customer")
        .filter(Q(secret_sha256=digest) | Q(previous_secret_sha256=digest, previous_secret_expires_at__gt=now))
        .first()
    )


@dataclass(frozen=True)
class GovernanceSummary:
    customers: int
    teams: int
    active_keys: int
    blocked_keys: int
    budgets: int


def get_governance_summary() -> GovernanceSummary:
    return GovernanceSummary(
        customers=Customer.objects.count(),
        teams=Team.objects.count(),
        active_keys=VirtualKey.objects.filter(status=VirtualKeyStatus.ACTIVE).count(),
        blocked_keys=VirtualKey.objects.filter(status=VirtualKeyStatus.BLOCKED).count(),
        budgets=Budget.objects.count(),
    )

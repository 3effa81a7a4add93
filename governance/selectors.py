"""Reads for governance objects; each sets its own joins."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.apps import apps
from django.contrib.auth import get_user_model
from django.db.models import Prefetch, Q, QuerySet

from governance import budget_state
from governance.models import (
    Alert,
    AlertChannel,
    AlertDelivery,
    AlertDeliveryAttempt,
    ApiToken,
    AuditEntry,
    Budget,
    BudgetPeriod,
    BudgetScope,
    ConfigPushAttempt,
    ConfigRevision,
    Customer,
    GatewayNode,
    Invitation,
    Team,
    VirtualKey,
    VirtualKeyStatus,
)
from governance.periods import period_bounds
from governance.permissions import EVERYTHING, Visibility, budget_q
from governance.secrets import sha256_hex

# Every list takes ``within``: the part of the organisation the caller may see
# (``Access.spend`` for customers, teams, budgets and alerts; ``Access.keys`` for keys).


def list_customers(within: Visibility = EVERYTHING) -> QuerySet[Customer]:
    return Customer.objects.filter(within.q(customer="pk", team=None))


def list_teams(within: Visibility = EVERYTHING) -> QuerySet[Team]:
    return Team.objects.filter(within.q(customer=None, team="pk")).select_related("customer")


def list_virtual_keys(within: Visibility = EVERYTHING) -> QuerySet[VirtualKey]:
    return VirtualKey.objects.filter(within.q()).select_related("team", "customer").prefetch_related("blocked_by")


def filter_virtual_keys_by_status(keys: QuerySet[VirtualKey], *, status: str, now: datetime) -> QuerySet[VirtualKey]:
    """Keys whose effective status (``VirtualKey.effective_status``) is ``status``."""
    lapsed = Q(status__in=[VirtualKeyStatus.ACTIVE, VirtualKeyStatus.BLOCKED], expires_at__lte=now)
    if status == VirtualKeyStatus.EXPIRED:
        return keys.filter(Q(status=VirtualKeyStatus.EXPIRED) | lapsed)
    return keys.filter(status=status).exclude(lapsed)


def list_budgets(within: Visibility = EVERYTHING) -> QuerySet[Budget]:
    return Budget.objects.filter(budget_q(within)).select_related("customer", "team", "virtual_key")


def budget_statuses(budgets: Iterable[Budget], *, now: datetime) -> dict[int, budget_state.PeriodStatus]:
    """Each budget's current period at ``now`` (one query for all of them)."""
    budgets = list(budgets)
    bounds = {budget.pk: period_bounds(budget.period, budget.timezone, now) for budget in budgets}
    spent = {
        (row["budget_id"], row["start"]): row["spent"]
        for row in BudgetPeriod.objects.filter(
            budget_id__in=bounds, start__in={start for start, _ in bounds.values()}
        ).values("budget_id", "start", "spent")
    }
    return {
        budget.pk: budget_state.period_status(
            spent=spent.get((budget.pk, start), budget_state.ZERO),
            limit=budget.limit_at(now),
            thresholds=budget.soft_thresholds,
            start=start,
            end=end,
            now=now,
        )
        for budget in budgets
        for start, end in [bounds[budget.pk]]
    }


@dataclass(frozen=True)
class BudgetRow:
    """A budget with its current period, as pages list them."""

    budget: Budget
    status: budget_state.PeriodStatus


def budget_use_by_customer(*, now: datetime, within: Visibility = EVERYTHING) -> dict[int, Decimal]:
    """For each customer with budgets, the highest percent used of its current periods."""
    budgets = list(Budget.objects.filter(budget_q(within), scope_type=BudgetScope.CUSTOMER))
    statuses = budget_statuses(budgets, now=now)
    use: dict[int, Decimal] = {}
    for budget in budgets:
        assert budget.customer_id is not None
        use[budget.customer_id] = max(use.get(budget.customer_id, Decimal(0)), statuses[budget.pk].percent_used)
    return use


def list_budget_periods(budget: Budget) -> QuerySet[BudgetPeriod]:
    return BudgetPeriod.objects.filter(budget=budget).order_by("-start")


def list_alerts(within: Visibility = EVERYTHING) -> QuerySet[Alert]:
    deliveries = AlertDelivery.objects.select_related("channel").prefetch_related(
        Prefetch("attempt_log", queryset=AlertDeliveryAttempt.objects.order_by("number"))
    )
    alerts = Alert.objects.all() if within.everything else Alert.objects.filter(budget__in=list_budgets(within))
    return alerts.select_related("period").prefetch_related(Prefetch("deliveries", queryset=deliveries))


def list_alert_channels() -> QuerySet[AlertChannel]:
    return AlertChannel.objects.all()


def list_api_tokens() -> QuerySet[ApiToken]:
    return ApiToken.objects.select_related("user").prefetch_related("customers", "teams")


def list_users() -> QuerySet[Any]:
    related = ["role_grants__customers", "role_grants__teams", "socialaccount_set"]
    if apps.is_installed("allauth.mfa"):  # not with SSO only
        related.append("authenticator_set")
    return get_user_model().objects.order_by("username").prefetch_related(*related)


def list_invitations() -> QuerySet[Invitation]:
    return Invitation.objects.select_related("invited_by").prefetch_related("customers", "teams")


def list_audit_entries() -> QuerySet[AuditEntry]:
    return AuditEntry.objects.all()


def list_gateway_nodes() -> QuerySet[GatewayNode]:
    return GatewayNode.objects.all()


def list_push_attempts(node: GatewayNode) -> QuerySet[ConfigPushAttempt]:
    return ConfigPushAttempt.objects.filter(node=node).order_by("-at", "-id")


def get_gateway_node_for_token(*, secret: str) -> GatewayNode | None:
    if not secret.startswith("bsn_"):
        return None
    return GatewayNode.objects.filter(ingest_token_sha256=sha256_hex(secret)).first()


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


def get_governance_summary(
    *, now: datetime, within: Visibility = EVERYTHING, keys_within: Visibility = EVERYTHING
) -> GovernanceSummary:
    keys = VirtualKey.objects.filter(keys_within.q())
    return GovernanceSummary(
        customers=list_customers(within).count(),
        teams=list_teams(within).count(),
        active_keys=filter_virtual_keys_by_status(keys, status="active", now=now).count(),
        blocked_keys=filter_virtual_keys_by_status(keys, status="blocked", now=now).count(),
        budgets=list_budgets(within).count(),
    )


@dataclass(frozen=True)
class KeyOwnership:
    virtual_key_id: int
    team_id: int | None
    customer_id: int | None


@dataclass(frozen=True)
class Attribution:
    """What the names a gateway sent resolve to; names that match nothing are absent."""

    keys: dict[str, KeyOwnership]
    customers: dict[str, int]
    teams: dict[str, tuple[int, int | None]]  # slug -> (team id, its customer id)


def resolve_attribution(*, key_refs: set[str], customer_refs: set[str], team_refs: set[str]) -> Attribution:
    """Resolve gateway names in three queries.

    A key is named by its public id, the displayed prefix of its secret, the SHA-256 of
    its secret, the SHA-256 of ``sk-`` + its secret (LiteLLM's ``user_api_key_hash`` for
    the keys Bursar provisions there) or its name when that name is unique.
    """
    keys: dict[str, KeyOwnership] = {}
    if key_refs:
        rows = VirtualKey.objects.filter(
            Q(public_id__in=key_refs)
            | Q(secret_prefix__in=key_refs)
            | Q(secret_sha256__in=key_refs)
            | Q(litellm_sha256__in=key_refs)
            | Q(previous_litellm_sha256__in=key_refs)
            | Q(name__in=key_refs)
        ).values_list(
            "pk",
            "public_id",
            "secret_prefix",
            "secret_sha256",
            "litellm_sha256",
            "previous_litellm_sha256",
            "name",
            "team_id",
            "customer_id",
        )
        by_name: dict[str, list[KeyOwnership]] = {}
        for pk, public_id, prefix, digest, litellm_digest, previous_litellm, name, team_id, customer_id in rows:
            owner = KeyOwnership(pk, team_id, customer_id)
            # The previous LiteLLM key keeps working (and spending) during a rotation's grace window.
            for ref in (public_id, prefix, digest, litellm_digest, previous_litellm):
                if ref in key_refs:
                    keys[ref] = owner
            by_name.setdefault(name, []).append(owner)
        for name, owners in by_name.items():
            if name in key_refs and name not in keys and len(owners) == 1:
                keys[name] = owners[0]
    customers = dict(Customer.objects.filter(external_id__in=customer_refs).values_list("external_id", "pk"))
    teams: dict[str, tuple[int, int | None]] = {
        slug: (pk, customer_id)
        for slug, pk, customer_id in Team.objects.filter(slug__in=team_refs).values_list("slug", "pk", "customer_id")
    }
    return Attribution(keys=keys, customers=customers, teams=teams)


def latest_config_version() -> int | None:
    return ConfigRevision.objects.order_by("-version").values_list("version", flat=True).first()

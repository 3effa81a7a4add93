"""The desired state every gateway node should enforce, rendered from governance.

One function, ``render_desired_state``: the content of a config revision (api.md,
"Config"). It is deterministic: the same governance state renders the same canonical
JSON, hence the same sha256. Secrets appear only as SHA-256.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.conf import settings

from governance.models import Budget, BudgetScope, VirtualKey, VirtualKeyStatus
from governance.selectors import budget_statuses

MONEY = Decimal("0.0001")


def canonical_json(value: Any) -> str:
    """Keys sorted, no whitespace, UTF-8: one text per value."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def content_sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


_KEY_COLUMNS = (
    "pk",
    "public_id",
    "name",
    "secret_sha256",
    "status",
    "allowed_models",
    "requests_per_minute",
    "tokens_per_minute",
    "expires_at",
    "previous_secret_sha256",
    "previous_secret_expires_at",
    "team_id",
    "customer_id",
    "team__slug",
    "customer__external_id",
)


def render_desired_state(*, now: datetime) -> dict[str, Any]:
    """Every live key (active or blocked, not past its expiry) with what a gateway needs
    to enforce it; revoked and expired keys are left out, so gateways drop them.

    ``budget_remaining`` is the tightest remaining amount, in USD, across the key's
    hard-capped budgets (key, team, customer, organization) at render time; null when
    none applies.
    """
    # Plain rows, not model instances: at 20,000 keys building instances (and a related
    # manager per key for blocked_by) was most of a two-second render.
    keys = list(
        VirtualKey.objects.filter(status__in=[VirtualKeyStatus.ACTIVE, VirtualKeyStatus.BLOCKED])
        .exclude(expires_at__lte=now)
        .order_by("public_id")
        .values_list(*_KEY_COLUMNS)
    )
    blocked_by: dict[int, list[int]] = defaultdict(list)
    for key_id, budget_id in VirtualKey.blocked_by.through.objects.order_by("budget_id").values_list(
        "virtualkey_id", "budget_id"
    ):
        blocked_by[key_id].append(budget_id)
    budgets = list(Budget.objects.filter(hard_cap=True).select_related("customer", "team", "virtual_key"))
    statuses = budget_statuses(budgets, now=now)
    remaining_usd: dict[tuple[str, int | None], list[Decimal]] = defaultdict(list)
    for budget in budgets:
        rate = settings.EXCHANGE_RATES.get(budget.currency, Decimal(1))
        remaining_usd[(budget.scope_type, budget.scope_id)].append(statuses[budget.pk].remaining / rate)
    reason_of = {
        budget.pk: f"budget {budget.pk} exceeded ({budget.period}, {budget.scope_label()})" for budget in budgets
    }
    organization = remaining_usd.get((BudgetScope.ORGANIZATION, None), [])
    entries = []
    for (pk, public_id, name, secret_sha256, status, allowed_models, rpm, tpm, expires_at, previous_sha256,
         previous_until, team_id, customer_id, team_slug, customer_ref) in keys:  # fmt: skip
        chain = [
            *organization,
            *remaining_usd.get((BudgetScope.VIRTUAL_KEY, pk), []),
            *(remaining_usd.get((BudgetScope.TEAM, team_id), []) if team_id else []),
            *(remaining_usd.get((BudgetScope.CUSTOMER, customer_id), []) if customer_id else []),
        ]
        reasons = [reason_of.get(budget_id, f"budget {budget_id} exceeded") for budget_id in blocked_by.get(pk, [])]
        entry: dict[str, Any] = {
            "id": public_id,
            "name": name,
            "secret_sha256": secret_sha256,
            "status": status,
            "blocked_reason": "; ".join(reasons) if status == VirtualKeyStatus.BLOCKED and reasons else None,
            "allowed_models": list(allowed_models),
            "rate_limit": {"requests_per_minute": rpm, "tokens_per_minute": tpm},
            "budget_remaining": str(min(chain).quantize(MONEY)) if chain else None,
            "customer": customer_ref,
            "team": team_slug,
            "expires_at": _iso(expires_at) if expires_at else None,
        }
        if previous_sha256 and previous_until and previous_until > now:
            entry["previous_secret_sha256"] = previous_sha256
            entry["previous_secret_valid_until"] = _iso(previous_until)
        entries.append(entry)
    return {"virtual_keys": entries}

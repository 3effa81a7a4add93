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


def render_desired_state(*, now: datetime) -> dict[str, Any]:
    """Every live key (active or blocked, not past its expiry) with what a gateway needs
    to enforce it; revoked and expired keys are left out, so gateways drop them.

    ``budget_remaining`` is the tightest remaining amount, in USD, across the key's
    hard-capped budgets (key, team, customer, organization) at render time; null when
    none applies.
    """
    keys = list(
        VirtualKey.objects.filter(status__in=[VirtualKeyStatus.ACTIVE, VirtualKeyStatus.BLOCKED])
        .exclude(expires_at__lte=now)
        .select_related("team", "customer")
        .prefetch_related("blocked_by")
        .order_by("public_id")
    )
    budgets = list(Budget.objects.filter(hard_cap=True).select_related("customer", "team", "virtual_key"))
    statuses = budget_statuses(budgets, now=now)
    remaining_usd: dict[tuple[str, int | None], list[Decimal]] = defaultdict(list)
    for budget in budgets:
        rate = settings.EXCHANGE_RATES.get(budget.currency, Decimal(1))
        remaining_usd[(budget.scope_type, budget.scope_id)].append(statuses[budget.pk].remaining / rate)
    by_id = {budget.pk: budget for budget in budgets}

    entries = []
    for key in keys:
        chain = [
            *remaining_usd[(BudgetScope.ORGANIZATION, None)],
            *remaining_usd[(BudgetScope.VIRTUAL_KEY, key.pk)],
            *(remaining_usd[(BudgetScope.TEAM, key.team_id)] if key.team_id else []),
            *(remaining_usd[(BudgetScope.CUSTOMER, key.customer_id)] if key.customer_id else []),
        ]
        blockers = sorted(key.blocked_by.all(), key=lambda b: b.pk)
        reasons = [f"budget {b.pk} exceeded ({b.period}, {by_id.get(b.pk, b).scope_label()})" for b in blockers]
        entry: dict[str, Any] = {
            "id": key.public_id,
            "name": key.name,
            "secret_sha256": key.secret_sha256,
            "status": key.status,
            "blocked_reason": "; ".join(reasons) if key.status == VirtualKeyStatus.BLOCKED and reasons else None,
            "allowed_models": list(key.allowed_models),
            "rate_limit": {"requests_per_minute": key.requests_per_minute, "tokens_per_minute": key.tokens_per_minute},
            "budget_remaining": str(min(chain).quantize(MONEY)) if chain else None,
            "customer": key.customer.external_id if key.customer else None,
            "team": key.team.slug if key.team else None,
            "expires_at": _iso(key.expires_at) if key.expires_at else None,
        }
        if key.previous_secret_sha256 and key.previous_secret_expires_at and key.previous_secret_expires_at > now:
            entry["previous_secret_sha256"] = key.previous_secret_sha256
            entry["previous_secret_valid_until"] = _iso(key.previous_secret_expires_at)
        entries.append(entry)
    return {"virtual_keys": entries}

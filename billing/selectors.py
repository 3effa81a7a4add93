"""Reads of spend and usage, always from the hourly rollups: their cost depends on the
number of rollup rows in the range, never on the number of events."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.db.models import F, QuerySet, Sum
from django.db.models.functions import TruncDay, TruncMonth

from billing.histogram import BUCKET_FIELDS, percentile
from billing.models import ModelPrice, UsageEvent, UsageRollup
from governance.models import Customer, Team, VirtualKey

GROUP_DIMENSIONS = ("customer", "team", "virtual_key", "provider", "model", "pipeline_stage")
GRANULARITIES = ("hour", "day", "month", "total")
_ID_COLUMNS = {"customer": "customer_id", "team": "team_id", "virtual_key": "virtual_key_id"}
_SUMS = (
    "requests",
    "errors",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "images",
    "cost",
    "unpriced_requests",
    "cache_hits",
    "cache_savings",
    "fallbacks",
    "latency_count",
    "latency_sum_ms",
)


@dataclass(frozen=True)
class UsageQuery:
    start: datetime
    end: datetime
    granularity: str = "day"
    group_by: tuple[str, ...] = ()
    timezone: str = "UTC"
    # Filters name things as gateways and people do: external_id, slug, public_id.
    customers: tuple[str, ...] = ()
    teams: tuple[str, ...] = ()
    virtual_keys: tuple[str, ...] = ()
    providers: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    pipeline_stages: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)


def _filtered(query: UsageQuery) -> QuerySet[UsageRollup]:
    rows = UsageRollup.objects.filter(bucket__gte=query.start, bucket__lt=query.end)
    if query.customers:
        rows = rows.filter(customer_id__in=Customer.objects.filter(external_id__in=query.customers).values("pk"))
    if query.teams:
        rows = rows.filter(team_id__in=Team.objects.filter(slug__in=query.teams).values("pk"))
    if query.virtual_keys:
        rows = rows.filter(virtual_key_id__in=VirtualKey.objects.filter(public_id__in=query.virtual_keys).values("pk"))
    if query.providers:
        rows = rows.filter(provider__in=query.providers)
    if query.models:
        rows = rows.filter(model__in=query.models)
    if query.pipeline_stages:
        rows = rows.filter(pipeline_stage__in=query.pipeline_stages)
    return rows


def _names(rows: list[dict[str, Any]], group_by: tuple[str, ...]) -> dict[str, dict[int, str]]:
    """Display names for the ids in ``rows``, one query per id dimension grouped on."""
    lookups = {"customer": (Customer, "external_id"), "team": (Team, "slug"), "virtual_key": (VirtualKey, "public_id")}
    names: dict[str, dict[int, str]] = {}
    for dimension, (model, attribute) in lookups.items():
        if dimension in group_by:
            ids = {row[_ID_COLUMNS[dimension]] for row in rows} - {0}
            names[dimension] = dict(model._default_manager.filter(pk__in=ids).values_list("pk", attribute))
    return names


def list_usage(query: UsageQuery) -> list[dict[str, Any]]:
    """Usage rows per bucket and group, with latency percentiles from merged histograms.

    Side effects: none.
    """
    rows = _filtered(query)
    keys: list[str] = []
    zone = ZoneInfo(query.timezone)
    if query.granularity == "hour":
        rows = rows.annotate(period=F("bucket"))
        keys.append("period")
    elif query.granularity == "day":
        rows = rows.annotate(period=TruncDay("bucket", tzinfo=zone))
        keys.append("period")
    elif query.granularity == "month":
        rows = rows.annotate(period=TruncMonth("bucket", tzinfo=zone))
        keys.append("period")
    keys += [_ID_COLUMNS.get(dimension, dimension) for dimension in query.group_by]
    aggregates = {name: Sum(name) for name in (*_SUMS, *BUCKET_FIELDS)}
    grouped = (
        list(rows.values(*keys).annotate(**aggregates).order_by(*keys)) if keys else [rows.aggregate(**aggregates)]
    )
    names = _names(grouped, query.group_by)
    results: list[dict[str, Any]] = []
    for row in grouped:
        if not row.get("requests"):
            continue
        result: dict[str, Any] = {}
        if "period" in row:
            result["bucket"] = row["period"].astimezone(zone)
        for dimension in query.group_by:
            if dimension in _ID_COLUMNS:
                value = row[_ID_COLUMNS[dimension]]
                result[dimension] = names[dimension].get(value) if value else None
            else:
                result[dimension] = row[dimension] or None
        for name in _SUMS:
            result[name] = row[name] or (Decimal(0) if name in ("cost", "cache_savings") else 0)
        counts = [row[name] or 0 for name in BUCKET_FIELDS]
        result["latency_avg_ms"] = round(row["latency_sum_ms"] / row["latency_count"]) if row["latency_count"] else None
        result["latency_p50_ms"] = percentile(counts, 0.50)
        result["latency_p95_ms"] = percentile(counts, 0.95)
        result["latency_p99_ms"] = percentile(counts, 0.99)
        del result["latency_sum_ms"], result["latency_count"]
        results.append(result)
    return results


def list_prices() -> QuerySet[ModelPrice]:
    return ModelPrice.objects.all()


def sum_spend(*, customer: Customer, start: datetime, end: datetime) -> Decimal:
    """A customer's spend over ``[start, end)`` at hour resolution, from the rollups."""
    total = UsageRollup.objects.filter(customer_id=customer.pk, bucket__gte=start, bucket__lt=end).aggregate(
        total=Sum("cost")
    )["total"]
    return total or Decimal(0)


def count_unpriced_events() -> int:
    return UsageEvent.objects.filter(cost_source="unpriced").count()

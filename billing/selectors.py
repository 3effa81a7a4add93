"""Reads of spend and usage, always from the hourly rollups: their cost depends on the
number of rollup rows in the range, never on the number of events."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.db.models import F, QuerySet, Sum
from django.db.models.functions import TruncDay, TruncMonth

from billing.histogram import BUCKET_FIELDS, percentile
from billing.models import ModelPrice, UsageEvent, UsageRollup, UsageSums
from billing.tiers import TIERS
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


_FILTER_DIMENSIONS = {
    "customers": "customer",
    "teams": "team",
    "virtual_keys": "virtual_key",
    "providers": "provider",
    "models": "model",
    "pipeline_stages": "pipeline_stage",
}


def _utc_midnight(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def _parts(query: UsageQuery) -> list[tuple[type[UsageSums], datetime, datetime]]:
    """Which table serves which part of the range.

    The smallest tier that has every dimension the query groups or filters on serves what
    its buckets can: any range by the hour for an hourly tier; whole UTC days for a daily
    one, with the ragged hours at either end (and queries by hour, or by day in another
    timezone) from the hourly rollups. Results are identical: the tiers are sums of the
    same rows.
    """
    needed = set(query.group_by) | {dim for attr, dim in _FILTER_DIMENSIONS.items() if getattr(query, attr)}
    whole: list[tuple[type[UsageSums], datetime, datetime]] = [(UsageRollup, query.start, query.end)]
    days_allowed = query.granularity != "hour" and query.timezone == "UTC"
    for tier in TIERS:
        if not needed <= tier.dimensions:
            continue
        if tier.granularity == "hour":
            return [(tier.model, query.start, query.end)]
        if not days_allowed:
            continue
        first_day = _utc_midnight(query.start)
        if first_day < query.start:
            first_day += timedelta(days=1)
        last_day = _utc_midnight(query.end)
        if first_day >= last_day:
            continue
        edges = [(UsageRollup, query.start, first_day), (UsageRollup, last_day, query.end)]
        # The ragged hours can themselves come from an hourly tier with these dimensions.
        hourly = next((t.model for t in TIERS if t.granularity == "hour" and needed <= t.dimensions), UsageRollup)
        parts = [(hourly, start, end) for _, start, end in edges if start < end]
        return [*parts, (tier.model, first_day, last_day)]
    return whole


def _filtered(model: type[UsageSums], query: UsageQuery, start: datetime, end: datetime) -> QuerySet[Any]:
    # Any: which dimension columns exist depends on the tier (``_parts`` chose one that has them).
    manager: Any = model._default_manager
    rows: QuerySet[Any] = manager.filter(bucket__gte=start, bucket__lt=end)
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


def _grouped(query: UsageQuery) -> list[dict[str, Any]]:
    """Sums per (period, group) over every part of the range, merged."""
    zone = ZoneInfo(query.timezone)
    keys = [_ID_COLUMNS.get(dimension, dimension) for dimension in query.group_by]
    if query.granularity != "total":
        keys.insert(0, "period")
    aggregates = {name: Sum(name) for name in (*_SUMS, *BUCKET_FIELDS)}
    merged: dict[tuple[Any, ...], dict[str, Any]] = {}
    for model, start, end in _parts(query):
        rows = _filtered(model, query, start, end)
        if query.granularity == "hour":
            rows = rows.annotate(period=F("bucket"))
        elif query.granularity == "day":
            rows = rows.annotate(period=TruncDay("bucket", tzinfo=zone))
        elif query.granularity == "month":
            rows = rows.annotate(period=TruncMonth("bucket", tzinfo=zone))
        found = list(rows.values(*keys).annotate(**aggregates).order_by()) if keys else [rows.aggregate(**aggregates)]
        for row in found:
            key = tuple(row[name] for name in keys)
            total = merged.get(key)
            if total is None:
                merged[key] = row
            else:
                for name in aggregates:
                    total[name] = (total[name] or 0) + (row[name] or 0)
    return [merged[key] for key in sorted(merged, key=lambda key: tuple((v is None, v) for v in key))]


def list_usage(query: UsageQuery) -> list[dict[str, Any]]:
    """Usage rows per bucket and group, with latency percentiles from merged histograms.

    Side effects: none.
    """
    zone = ZoneInfo(query.timezone)
    grouped = _grouped(query)
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


def sum_spend(*, customer: Customer, start: datetime, end: datetime) -> Decimal:
    """A customer's spend over ``[start, end)`` at hour resolution, from the rollups
    (whole days from the daily customer tier)."""
    query = UsageQuery(start=start, end=end, granularity="total", customers=(customer.external_id,))
    rows = _grouped(query)
    return (rows[0]["cost"] if rows and rows[0]["cost"] is not None else None) or Decimal(0)


def list_prices() -> QuerySet[ModelPrice]:
    return ModelPrice.objects.all()


def count_unpriced_events() -> int:
    return UsageEvent.objects.filter(cost_source="unpriced").count()

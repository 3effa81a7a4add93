"""Reads of spend and usage, always from the hourly rollups: their cost depends on the
number of rollup rows in the range, never on the number of events."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.core.exceptions import EmptyResultSet
from django.db import connection
from django.db.models import BigIntegerField, F, QuerySet, Sum, Value
from django.db.models.functions import Cast, TruncDay, TruncMonth

from billing.histogram import BUCKET_FIELDS, percentile
from billing.models import ModelPrice, UsageEvent, UsageRollup, UsageSums, UsageUnits
from billing.tiers import MEASURES, MONEY_MEASURES, ROLLUP_SUMS, TIERS
from governance.models import Customer, Team, VirtualKey
from governance.permissions import EVERYTHING, Visibility

GROUP_DIMENSIONS = ("customer", "team", "virtual_key", "provider", "model", "pipeline_stage")
GRANULARITIES = ("hour", "day", "month", "total")
_ID_COLUMNS = {"customer": "customer_id", "team": "team_id", "virtual_key": "virtual_key_id"}

# SUM(bigint) is numeric in PostgreSQL: integer sums are cast back so rows arrive as ints.
_AGGREGATES = {
    name: Sum(name) if name in MONEY_MEASURES else Cast(Sum(name), BigIntegerField()) for name in ROLLUP_SUMS
}


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
    # The customers and teams the caller may see (``Access.spend``): rows outside are left out.
    within: Visibility = EVERYTHING


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
    if not query.within.everything:  # the scope filters on the columns it names (usage_q)
        needed |= {"customer"} if query.within.customer_ids else set()
        needed |= {"team"} if query.within.team_ids else set()
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
    if not query.within.everything:
        rows = rows.filter(query.within.usage_q())
    # Names are resolved to ids first: a literal id list lets PostgreSQL use the
    # (scope, bucket) indexes, where a sub-select made it hash-join the whole range.
    if query.customers:
        rows = rows.filter(
            customer_id__in=list(Customer.objects.filter(external_id__in=query.customers).values_list("pk", flat=True))
        )
    if query.teams:
        rows = rows.filter(team_id__in=list(Team.objects.filter(slug__in=query.teams).values_list("pk", flat=True)))
    if query.virtual_keys:
        rows = rows.filter(
            virtual_key_id__in=list(
                VirtualKey.objects.filter(public_id__in=query.virtual_keys).values_list("pk", flat=True)
            )
        )
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


def _dimension_values(
    row: dict[str, Any], group_by: tuple[str, ...], names: dict[str, dict[int, str]]
) -> dict[str, Any]:
    """The grouped dimensions of a row as people name them (external id, slug, public id)."""
    values: dict[str, Any] = {}
    for dimension in group_by:
        if dimension in _ID_COLUMNS:
            value = row[_ID_COLUMNS[dimension]]
            values[dimension] = names[dimension].get(value) if value else None
        else:
            values[dimension] = row[dimension] or None
    return values


def _part_rows(
    model: type[UsageSums],
    query: UsageQuery,
    start: datetime,
    end: datetime,
    keys: list[str],
    sums: tuple[str, ...] = ROLLUP_SUMS,
) -> QuerySet[Any]:
    rows = _filtered(model, query, start, end)
    zone = ZoneInfo(query.timezone)
    if query.granularity == "hour":
        rows = rows.annotate(period=F("bucket"))
    elif query.granularity == "day":
        rows = rows.annotate(period=TruncDay("bucket", tzinfo=zone))
    elif query.granularity == "month":
        rows = rows.annotate(period=TruncMonth("bucket", tzinfo=zone))
    if not keys:  # one total: group by a constant, which SQL leaves out of GROUP BY
        rows = rows.annotate(_all=Value(1))
    grouped: QuerySet[Any] = (
        rows.values(*(keys or ["_all"])).annotate(**{name: _AGGREGATES[name] for name in sums}).order_by()
    )
    return grouped


def _grouped(query: UsageQuery, sums: tuple[str, ...] = ROLLUP_SUMS) -> list[dict[str, Any]]:
    """Sums (``sums``: every measure and histogram bucket, or fewer) per (period, group)
    over every part of the range, merged."""
    zone = ZoneInfo(query.timezone)
    keys = [_ID_COLUMNS.get(dimension, dimension) for dimension in query.group_by]
    if query.granularity != "total":
        keys.insert(0, "period")
    parts = [_part_rows(model, query, start, end, keys, sums) for model, start, end in _parts(query)]
    if connection.vendor == "postgresql":
        found = _fetch_merged(parts, keys, zone, sums)
    else:
        found = _merge_in_python(parts, keys, sums)
    return sorted(found, key=lambda row: tuple((row[name] is None, row[name]) for name in keys))


def _fetch_merged(
    parts: list[QuerySet[Any]], keys: list[str], zone: ZoneInfo, sums: tuple[str, ...]
) -> list[dict[str, Any]]:
    """PostgreSQL: every part in one statement (UNION ALL, summed again outside), run on
    the cursor directly. The server may scan the parts in parallel; psycopg already yields
    ints, Decimals and datetimes, so Django's per-value converters are skipped."""
    selects: list[str] = []
    params: list[Any] = []
    for part in parts:
        try:
            sql, part_params = part.query.sql_with_params()
        except EmptyResultSet:  # a filter that can match nothing, e.g. an empty scope
            continue
        selects.append(f"({sql})")
        params.extend(part_params)
    if not selects:
        return []
    outer = ", ".join(
        [*keys, *(f"SUM({name}){'' if name in MONEY_MEASURES else '::bigint'} AS {name}" for name in sums)]
    )
    group = f" GROUP BY {', '.join(keys)}" if keys else ""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {outer} FROM ({' UNION ALL '.join(selects)}) AS parts{group}", params)  # noqa: S608
        names = [column.name for column in cursor.description]
        found = [dict(zip(names, values, strict=True)) for values in cursor.fetchall()]
    for row in found:
        period = row.get("period")
        if isinstance(period, datetime) and period.tzinfo is None:  # truncated in ``zone``
            row["period"] = period.replace(tzinfo=zone)
    return [row for row in found if row["requests"] is not None]


def _merge_in_python(parts: list[QuerySet[Any]], keys: list[str], sums: tuple[str, ...]) -> list[dict[str, Any]]:
    merged: dict[tuple[Any, ...], dict[str, Any]] = {}
    for part in parts:
        for row in part:
            key = tuple(row[name] for name in keys)
            total = merged.get(key)
            if total is None:
                merged[key] = row
            else:
                for name in sums:
                    total[name] = (total[name] or 0) + (row[name] or 0)
    return list(merged.values())


def list_usage(query: UsageQuery) -> list[dict[str, Any]]:
    """Usage rows per bucket and group, with latency percentiles from merged histograms
    (``list_totals`` is the light form for tables that show only cost and requests).

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
        result |= _dimension_values(row, query.group_by, names)
        for name in MEASURES:
            result[name] = row[name] or (Decimal(0) if name in MONEY_MEASURES else 0)
        counts = [row[name] or 0 for name in BUCKET_FIELDS]
        result["latency_avg_ms"] = round(row["latency_sum_ms"] / row["latency_count"]) if row["latency_count"] else None
        result["latency_p50_ms"] = percentile(counts, 0.50)
        result["latency_p95_ms"] = percentile(counts, 0.95)
        result["latency_p99_ms"] = percentile(counts, 0.99)
        del result["latency_sum_ms"], result["latency_count"]
        results.append(result)
    return results


def list_totals(query: UsageQuery, measures: tuple[str, ...] = ("cost", "requests")) -> list[dict[str, Any]]:
    """Just ``measures`` per group (tables that show cost and requests need no more):
    the database sums two columns instead of thirty-four."""
    grouped = _grouped(query, measures)
    names = _names(grouped, query.group_by)
    results = []
    for row in grouped:
        if not row.get("requests"):
            continue
        result = _dimension_values(row, query.group_by, names)
        for name in measures:
            result[name] = row[name] or (Decimal(0) if name in MONEY_MEASURES else 0)
        results.append(result)
    return results


def sum_spend(*, customer: Customer, start: datetime, end: datetime) -> Decimal:
    """A customer's spend over ``[start, end)`` at hour resolution, from the rollups
    (whole days from the daily customer tier)."""
    query = UsageQuery(start=start, end=end, granularity="total", customers=(customer.external_id,))
    rows = _grouped(query)
    return (rows[0]["cost"] if rows and rows[0]["cost"] is not None else None) or Decimal(0)


def sum_units(
    *,
    start: datetime,
    end: datetime,
    customer_id: int | None = None,
    team_id: int | None = None,
    virtual_key_id: int | None = None,
    within: Visibility = EVERYTHING,
) -> dict[str, Decimal]:
    """Units of work (``units`` of events, e.g. renders) over ``[start, end)`` at hour
    resolution, per unit name, for one scope (or all)."""
    rows = UsageUnits.objects.filter(bucket__gte=start, bucket__lt=end)
    if not within.everything:
        rows = rows.filter(within.usage_q())
    if customer_id is not None:
        rows = rows.filter(customer_id=customer_id)
    if team_id is not None:
        rows = rows.filter(team_id=team_id)
    if virtual_key_id is not None:
        rows = rows.filter(virtual_key_id=virtual_key_id)
    totals = rows.values("unit").annotate(total=Sum("amount")).order_by("unit")
    return {row["unit"]: row["total"] for row in totals if row["total"]}


def list_prices() -> QuerySet[ModelPrice]:
    return ModelPrice.objects.all()


def count_unpriced_events() -> int:
    return UsageEvent.objects.filter(cost_source="unpriced").count()

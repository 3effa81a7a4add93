"""Writes for usage: price events, store the new ones, add them to hourly rollups.

The hot path of ingest. Set-based: one INSERT for the batch's events and one upsert for
its rollup rows, on PostgreSQL via ``unnest`` of typed arrays (no parameter limit, one
round trip) and on SQLite via multi-row VALUES; both skip request_ids already stored and
return the ones actually inserted, and only those reach the rollups.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from operator import add
from typing import Any
from uuid import UUID

import orjson
from django.db import connection, transaction

from billing.histogram import BUCKET_FIELDS, LATENCY_BOUNDS_MS, bucket_index
from billing.models import CostSource, UsageEvent, UsageRollup, UsageSums, UsageUnits
from billing.pricing import ZERO, PriceBook, Usage, compute_cost, stored_amount
from billing.tiers import ROLLUP_KEY, ROLLUP_SUMS, TIERS, Tier
from bursar.db import prepare_rows


# Hot-path records are plain slotted dataclasses: a frozen dataclass pays a
# object.__setattr__ per field on construction, measurably slow at 10,000s per second.
@dataclass(slots=True)
class EventInput:
    """A validated, attributed native event, ready to be priced and stored."""

    batch_id: UUID | None
    node_id: int | None
    received_at: datetime
    request_id: str
    occurred_at: datetime
    customer_id: int | None
    team_id: int | None
    virtual_key_id: int | None
    virtual_key_ref: str
    customer_ref: str
    team_ref: str
    end_user: str
    provider: str
    model: str
    operation: str
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int
    cache_write_tokens: int
    images: int
    gpu_seconds: Decimal
    cost: Decimal | None
    latency_ms: int | None
    ttft_ms: int | None
    status: int
    cache: str
    fallback: bool
    pipeline_stage: str
    tags: dict[str, Any]
    units: dict[str, Any]


@dataclass(slots=True)
class StoredEvent:
    """What the caller needs of an event that was newly stored (budget charge, counts)."""

    batch_id: UUID | None
    is_unpriced: bool
    occurred_at: datetime
    cost: Decimal
    customer_id: int | None
    team_id: int | None
    virtual_key_id: int | None


@dataclass(frozen=True)
class RecordResult:
    inserted: list[StoredEvent]
    duplicates: int


EVENT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("request_id", "text"),
    ("occurred_at", "timestamptz"),
    ("received_at", "timestamptz"),
    ("batch_id", "uuid"),
    ("node_id", "bigint"),
    ("customer_id", "bigint"),
    ("team_id", "bigint"),
    ("virtual_key_id", "bigint"),
    ("virtual_key_ref", "text"),
    ("customer_ref", "text"),
    ("team_ref", "text"),
    ("end_user", "text"),
    ("provider", "text"),
    ("model", "text"),
    ("operation", "text"),
    ("input_tokens", "bigint"),
    ("output_tokens", "bigint"),
    ("cached_input_tokens", "bigint"),
    ("cache_write_tokens", "bigint"),
    ("images", "integer"),
    ("gpu_seconds", "numeric"),
    ("cost", "numeric"),
    ("cost_source", "text"),
    ("currency", "text"),
    ("price_id", "bigint"),
    ("latency_ms", "integer"),
    ("ttft_ms", "integer"),
    ("status", "integer"),
    ("cache", "text"),
    ("cache_savings", "numeric"),
    ("fallback", "boolean"),
    ("pipeline_stage", "text"),
    ("tags", "jsonb"),
    ("units", "jsonb"),
)


@dataclass(slots=True)
class _Priced:
    event: EventInput
    cost: Decimal | None
    source: str
    price_id: int | None
    savings: Decimal


def price_events(events: Sequence[EventInput], book: PriceBook) -> list[_Priced]:
    """The gateway's own cost wins; else the catalog price in effect at the event's time.

    A cache hit with no reported cost cost nothing; what the catalog would have charged
    is its saving.
    """
    priced: list[_Priced] = []
    for event in events:
        price = book.match(event.provider, event.model, event.occurred_at)
        list_cost = None
        if price is not None:
            usage = Usage.of(event)
            list_cost = compute_cost(price, usage)
        is_cache_hit = event.cache != "none"
        if event.cost is not None:
            cost, source = stored_amount(event.cost), CostSource.GATEWAY
        elif is_cache_hit:
            cost, source = ZERO, CostSource.GATEWAY
        elif list_cost is not None:
            cost, source = stored_amount(list_cost), CostSource.CATALOG
        else:
            cost, source = None, CostSource.UNPRICED
        savings = (
            stored_amount(max(list_cost - (cost or ZERO), ZERO)) if is_cache_hit and list_cost is not None else ZERO
        )
        priced.append(
            _Priced(event, cost, source, price.pk if price and source == CostSource.CATALOG else None, savings)
        )
    return priced


def _event_row(item: _Priced) -> list[Any]:
    e = item.event
    return [
        e.request_id, e.occurred_at, e.received_at, e.batch_id, e.node_id, e.customer_id, e.team_id, e.virtual_key_id,
        e.virtual_key_ref, e.customer_ref, e.team_ref, e.end_user, e.provider, e.model, e.operation,
        e.input_tokens, e.output_tokens, e.cached_input_tokens, e.cache_write_tokens, e.images, e.gpu_seconds,
        item.cost, item.source, "USD", item.price_id, e.latency_ms, e.ttft_ms, e.status, e.cache, item.savings,
        e.fallback, e.pipeline_stage, e.tags, e.units,
    ]  # fmt: skip


def _staging_table(cursor: Any, table: str, columns: Sequence[str]) -> str:
    """A per-connection temp table with ``table``'s column types, emptied at each commit.

    COPY into it is PostgreSQL's fastest way in (psycopg formats rows in C), and one
    INSERT … SELECT from it then applies the conflict rules in a single statement.
    """
    stage = f"stage_{table}"
    cursor.execute(
        f"CREATE TEMP TABLE IF NOT EXISTS {stage} ON COMMIT DELETE ROWS AS "  # noqa: S608 - fixed names
        f"SELECT {', '.join(columns)} FROM {table} WITH NO DATA"
    )
    return stage


def _copy_rows(cursor: Any, stage: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    with cursor.copy(f"COPY {stage} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def _insert_events(rows: list[list[Any]]) -> set[str]:
    """Insert rows, skipping request_ids already stored; the request_ids inserted."""
    table = UsageEvent._meta.db_table
    columns = [name for name, _ in EVENT_COLUMNS]
    names = ", ".join(columns)
    inserted: set[str] = set()
    if connection.vendor == "postgresql":
        json_columns = [index for index, (_, kind) in enumerate(EVENT_COLUMNS) if kind == "jsonb"]
        for row in rows:
            for index in json_columns:
                row[index] = orjson.dumps(row[index]).decode()
        connection.ensure_connection()
        with connection.connection.cursor() as cursor:
            stage = _staging_table(cursor, table, columns)
            _copy_rows(cursor, stage, columns, rows)
            cursor.execute(
                f"INSERT INTO {table} ({names}) SELECT {names} FROM {stage} "  # noqa: S608
                "ON CONFLICT (request_id) DO NOTHING RETURNING request_id"
            )
            inserted.update(row[0] for row in cursor.fetchall())
            cursor.execute(f"DELETE FROM {stage}")  # noqa: S608 - a later call in this transaction reuses it
        return inserted
    rows = prepare_rows(UsageEvent, columns, rows)
    per_row = "(" + ", ".join(["%s"] * len(columns)) + ")"
    chunk = max(1, 30_000 // len(columns))  # SQLite's bound-parameter limit is 32,766
    with connection.cursor() as cursor:
        for start in range(0, len(rows), chunk):
            part = rows[start : start + chunk]
            cursor.execute(
                f"INSERT INTO {table} ({names}) VALUES {', '.join([per_row] * len(part))} "  # noqa: S608
                "ON CONFLICT (request_id) DO NOTHING RETURNING request_id",
                [value for row in part for value in row],
            )
            inserted.update(row[0] for row in cursor.fetchall())
    return inserted


@dataclass(slots=True)
class RollupInput:
    """One event as the rollups see it (from a batch being stored or from stored rows)."""

    occurred_at: datetime
    customer_id: int | None
    team_id: int | None
    virtual_key_id: int | None
    provider: str
    model: str
    pipeline_stage: str
    status: int
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int
    cache_write_tokens: int
    images: int
    cost: Decimal | None
    cache: str
    savings: Decimal
    fallback: bool
    latency_ms: int | None


ROLLUP_INPUT_FIELDS = tuple(RollupInput.__dataclass_fields__)


def _as_rollup_input(item: _Priced) -> RollupInput:
    e = item.event
    return RollupInput(
        e.occurred_at, e.customer_id, e.team_id, e.virtual_key_id, e.provider, e.model, e.pipeline_stage, e.status,
        e.input_tokens, e.output_tokens, e.cached_input_tokens, e.cache_write_tokens, e.images, item.cost, e.cache,
        item.savings, e.fallback, e.latency_ms,
    )  # fmt: skip


_SUM_INDEX = {name: index for index, name in enumerate(ROLLUP_SUMS)}
_BUCKET_OFFSET = _SUM_INDEX[BUCKET_FIELDS[0]]


def rollup_rows(items: Sequence[RollupInput]) -> list[list[Any]]:
    """Aggregate events into rollup rows (key columns, then ``ROLLUP_SUMS``), sorted."""
    i = _SUM_INDEX
    sums: dict[tuple[Any, ...], list[Any]] = {}
    for e in items:
        key = (
            e.occurred_at.replace(minute=0, second=0, microsecond=0),
            e.customer_id or 0,
            e.team_id or 0,
            e.virtual_key_id or 0,
            e.provider,
            e.model,
            e.pipeline_stage,
        )
        row = sums.get(key)
        if row is None:
            row = sums[key] = [0] * len(ROLLUP_SUMS)
            row[i["cost"]] = ZERO
            row[i["cache_savings"]] = ZERO
        row[i["requests"]] += 1
        row[i["errors"]] += e.status >= 400
        row[i["input_tokens"]] += e.input_tokens
        row[i["output_tokens"]] += e.output_tokens
        row[i["cached_input_tokens"]] += e.cached_input_tokens
        row[i["cache_write_tokens"]] += e.cache_write_tokens
        row[i["images"]] += e.images
        if e.cost is None:
            row[i["unpriced_requests"]] += 1
        else:
            row[i["cost"]] += e.cost
        if e.cache != "none":
            row[i["cache_hits"]] += 1
            row[i["cache_savings"]] += e.savings
        row[i["fallbacks"]] += e.fallback
        if e.latency_ms is not None:
            row[i["latency_count"]] += 1
            row[i["latency_sum_ms"]] += e.latency_ms
            row[_BUCKET_OFFSET + bucket_index(e.latency_ms)] += 1
    # Sorted: concurrent workers take row locks in the same order, so never deadlock.
    return [[*key, *values] for key, values in sorted(sums.items())]


def _tier_rows(rows: Sequence[Sequence[Any]], tier: Tier) -> list[list[Any]]:
    """Re-aggregate hourly rollup rows into ``tier``'s rows."""
    width = len(ROLLUP_KEY)
    daily = tier.granularity == "day"
    sums: dict[tuple[Any, ...], list[Any]] = {}
    for row in rows:
        bucket = row[0].replace(hour=0) if daily else row[0]
        key = (bucket, *(row[position] for position in tier.hourly_positions))
        total = sums.get(key)
        sums[key] = list(row[width:]) if total is None else list(map(add, total, row[width:]))
    return [[*key, *values] for key, values in sorted(sums.items())]


def _upsert(model: type[UsageSums], key_columns: Sequence[str], rows: list[list[Any]]) -> None:
    """Add rows (key columns, then ``ROLLUP_SUMS``; sums may be negative deltas) to
    ``model``'s table, creating rows that do not exist yet. One statement."""
    if not rows:
        return
    table = model._meta.db_table
    columns = (*key_columns, *ROLLUP_SUMS)
    names = ", ".join(columns)
    conflict = _on_conflict(table, key_columns)
    if connection.vendor == "postgresql":
        connection.ensure_connection()
        with connection.connection.cursor() as cursor:
            stage = _staging_table(cursor, table, columns)
            _copy_rows(cursor, stage, columns, rows)
            cursor.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM {stage} {conflict}")  # noqa: S608
            cursor.execute(f"DELETE FROM {stage}")  # noqa: S608 - a later call in this transaction reuses it
        return
    rows = prepare_rows(model, columns, rows)
    per_row = "(" + ", ".join(["%s"] * len(columns)) + ")"
    chunk = max(1, 30_000 // len(columns))
    with connection.cursor() as cursor:
        for start in range(0, len(rows), chunk):
            part = rows[start : start + chunk]
            cursor.execute(
                f"INSERT INTO {table} ({names}) VALUES {', '.join([per_row] * len(part))} {conflict}",  # noqa: S608
                [value for row in part for value in row],
            )


def upsert_rollups(rows: list[list[Any]]) -> None:
    """Add hourly rollup rows (key columns, then ``ROLLUP_SUMS``; sums may be negative
    deltas) to the hourly table and to every coarser tier, in the caller's transaction.

    Every writer (ingest, re-price, rebuild) goes through here, so the tiers always agree.
    On PostgreSQL the hourly rows are staged once and each tier is summed from the stage
    by the database (``_upsert_tiers_from_stage``); elsewhere tiers are summed in Python.
    Side effects: upserts into UsageRollup and each TIERS table (one statement each).
    """
    if not rows:
        return
    if connection.vendor == "postgresql":
        table = UsageRollup._meta.db_table
        columns = (*ROLLUP_KEY, *ROLLUP_SUMS)
        connection.ensure_connection()
        with connection.connection.cursor() as cursor:
            stage = _staging_table(cursor, table, columns)
            _copy_rows(cursor, stage, columns, rows)
            cursor.execute(
                f"INSERT INTO {table} ({', '.join(columns)}) SELECT {', '.join(columns)} FROM {stage} "  # noqa: S608
                f"{_on_conflict(table, ROLLUP_KEY)}"
            )
            _upsert_tiers_from_stage(cursor, stage)
            cursor.execute(f"DELETE FROM {stage}")  # noqa: S608 - a later call in this transaction reuses it
        return
    _upsert(UsageRollup, ROLLUP_KEY, rows)
    for tier in TIERS:
        _upsert(tier.model, tier.key_columns, _tier_rows(rows, tier))


def _on_conflict(table: str, key_columns: Sequence[str]) -> str:
    updates = ", ".join(f"{name} = {table}.{name} + excluded.{name}" for name in ROLLUP_SUMS)
    return f"ON CONFLICT ({', '.join(key_columns)}) DO UPDATE SET {updates}"


def _upsert_tiers_from_stage(cursor: Any, stage: str) -> None:
    """Each tier summed from the staged hourly rows, in key order (concurrent writers
    lock tier rows in the same order, as with the hourly rows)."""
    sums = ", ".join(f"sum({name})" for name in ROLLUP_SUMS)
    for tier in TIERS:
        table = tier.model._meta.db_table
        dimensions = [ROLLUP_KEY[position] for position in tier.hourly_positions]
        bucket = "date_trunc('day', bucket, 'UTC')" if tier.granularity == "day" else "bucket"
        keys = ", ".join([bucket, *dimensions])
        cursor.execute(
            f"INSERT INTO {table} ({', '.join((*tier.key_columns, *ROLLUP_SUMS))}) "  # noqa: S608 - fixed names
            f"SELECT {keys}, {sums} FROM {stage} GROUP BY {keys} ORDER BY {keys} "
            f"{_on_conflict(table, tier.key_columns)}"
        )


def record_usage(*, events: Sequence[EventInput]) -> RecordResult:
    """Price and store events not seen before, and add exactly those to the rollups.

    Events may come from several batches; a request_id met twice counts for the first.
    Must run inside the caller's transaction: the events, the rollups and whatever the
    caller charges to budgets commit together or not at all.
    Side effects: UsageEvent rows (one INSERT), UsageRollup rows (one upsert).
    """
    unique: dict[str, EventInput] = {}
    for event in events:
        unique.setdefault(event.request_id, event)
    ordered = sorted(unique.values(), key=lambda event: event.request_id)
    priced = price_events(ordered, PriceBook.load())
    rows = [_event_row(item) for item in priced]
    inserted_ids = _insert_events(rows) if rows else set()
    fresh = [item for item in priced if item.event.request_id in inserted_ids]
    upsert_rollups(rollup_rows([_as_rollup_input(item) for item in fresh]))
    upsert_units(
        units_rows(
            (item.event.occurred_at, item.event.customer_id, item.event.team_id, item.event.virtual_key_id,
             item.event.units)
            for item in fresh
            if item.event.units
        )
    )  # fmt: skip
    return RecordResult(
        inserted=[
            StoredEvent(
                item.event.batch_id,
                item.cost is None,
                item.event.occurred_at,
                item.cost or ZERO,
                item.event.customer_id,
                item.event.team_id,
                item.event.virtual_key_id,
            )
            for item in fresh
        ],
        duplicates=len(events) - len(fresh),
    )


UNITS_KEY = ("bucket", "customer_id", "team_id", "virtual_key_id", "unit")


def units_rows(
    events: Iterable[tuple[datetime, int | None, int | None, int | None, dict[str, Any]]],
) -> list[list[Any]]:
    """Sum events' ``units`` per (hour, customer, team, key, unit), sorted."""
    sums: dict[tuple[Any, ...], list[Any]] = {}
    for occurred_at, customer_id, team_id, key_id, units in events:
        hour = occurred_at.replace(minute=0, second=0, microsecond=0)
        for unit, amount in units.items():
            key = (hour, customer_id or 0, team_id or 0, key_id or 0, unit)
            row = sums.setdefault(key, [Decimal(0), 0])
            row[0] += Decimal(str(amount))
            row[1] += 1
    return [[*key, *values] for key, values in sorted(sums.items())]


def upsert_units(rows: list[list[Any]]) -> None:
    """Add unit rows (``UNITS_KEY``, then amount and requests) to UsageUnits. One
    statement per 2,000 rows. Side effects: UsageUnits upserts."""
    if not rows:
        return
    table = UsageUnits._meta.db_table
    columns = (*UNITS_KEY, "amount", "requests")
    prepared = prepare_rows(UsageUnits, columns, rows)
    per_row = "(" + ", ".join(["%s"] * len(columns)) + ")"
    with connection.cursor() as cursor:
        for first in range(0, len(prepared), 2000):
            part = prepared[first : first + 2000]
            cursor.execute(
                f"INSERT INTO {table} ({', '.join(columns)}) VALUES {', '.join([per_row] * len(part))} "  # noqa: S608
                f"ON CONFLICT ({', '.join(UNITS_KEY)}) DO UPDATE SET amount = {table}.amount + excluded.amount, "
                f"requests = {table}.requests + excluded.requests",
                [value for row in part for value in row],
            )


def _rebuild_rollups_sql(first: datetime, last: datetime) -> int:
    """PostgreSQL: one INSERT … SELECT … GROUP BY (histogram buckets via FILTER)."""
    bounds = (0, *LATENCY_BOUNDS_MS)
    buckets = []
    for index, name in enumerate(BUCKET_FIELDS):
        low = f"latency_ms > {bounds[index]}" if index else "latency_ms IS NOT NULL"
        high = f" AND latency_ms <= {LATENCY_BOUNDS_MS[index]}" if index < len(LATENCY_BOUNDS_MS) else ""
        buckets.append(f"count(*) FILTER (WHERE {low}{high}) AS {name}")
    sums = {
        "requests": "count(*)",
        "errors": "count(*) FILTER (WHERE status >= 400)",
        "input_tokens": "sum(input_tokens)",
        "output_tokens": "sum(output_tokens)",
        "cached_input_tokens": "sum(cached_input_tokens)",
        "cache_write_tokens": "sum(cache_write_tokens)",
        "images": "sum(images)",
        "cost": "coalesce(sum(cost), 0)",
        "unpriced_requests": "count(*) FILTER (WHERE cost IS NULL)",
        "cache_hits": "count(*) FILTER (WHERE cache <> 'none')",
        "cache_savings": "sum(cache_savings)",
        "fallbacks": "count(*) FILTER (WHERE fallback)",
        "latency_count": "count(latency_ms)",
        "latency_sum_ms": "coalesce(sum(latency_ms), 0)",
    }
    keys = (
        "date_trunc('hour', occurred_at), coalesce(customer_id, 0), coalesce(team_id, 0), "
        "coalesce(virtual_key_id, 0), provider, model, pipeline_stage"
    )
    select = ", ".join([*(f"{expression} AS {name}" for name, expression in sums.items()), *buckets])
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL timezone = 'UTC'")
        cursor.execute(
            f"INSERT INTO {UsageRollup._meta.db_table} ({', '.join((*ROLLUP_KEY, *ROLLUP_SUMS))}) "  # noqa: S608
            f"SELECT {keys}, {select} FROM {UsageEvent._meta.db_table} "
            f"WHERE occurred_at >= %s AND occurred_at < %s GROUP BY {keys}",
            [first, last],
        )
        written: int = cursor.rowcount
        return written


def _rebuild_tier_sql(tier: Tier, first: datetime, last: datetime) -> None:
    """PostgreSQL: a tier from the (just rebuilt) hourly rows, in one statement."""
    dimensions = ", ".join(tier.key_columns[1:])
    bucket = f"date_trunc('{tier.granularity}', bucket)"
    sums = ", ".join(f"sum({name})" for name in ROLLUP_SUMS)
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL timezone = 'UTC'")
        cursor.execute(
            f"INSERT INTO {tier.model._meta.db_table} ({', '.join((*tier.key_columns, *ROLLUP_SUMS))}) "  # noqa: S608
            f"SELECT {bucket}, {dimensions}, {sums} FROM {UsageRollup._meta.db_table} "
            f"WHERE bucket >= %s AND bucket < %s GROUP BY {bucket}, {dimensions}",
            [first, last],
        )


def rebuild_rollups(*, start: datetime, end: datetime) -> tuple[int, int]:
    """Recompute the rollups (hourly and every tier) of ``[start, end)`` from stored events.

    For repairs (a bug fixed, rows edited by hand). Day-aligned: the range is widened to
    whole UTC days so the daily tiers are rebuilt whole. One transaction; returns (events
    read, hourly rollup rows written).
    Side effects: deletes and re-creates UsageRollup and daily tier rows of those days.
    """
    first = start.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    last = end.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if last < end:
        last += timedelta(days=1)
    with transaction.atomic():
        tables: tuple[type[UsageSums], ...] = (UsageRollup, *(tier.model for tier in TIERS))
        for model in tables:
            model._default_manager.filter(bucket__gte=first, bucket__lt=last).delete()
        UsageUnits.objects.filter(bucket__gte=first, bucket__lt=last).delete()
        events = UsageEvent.objects.filter(occurred_at__gte=first, occurred_at__lt=last)
        with_units = events.exclude(units={}).values_list(
            "occurred_at", "customer_id", "team_id", "virtual_key_id", "units"
        )
        upsert_units(units_rows(with_units.iterator(chunk_size=10_000)))
        if connection.vendor == "postgresql":
            written = _rebuild_rollups_sql(first, last)
            for tier in TIERS:
                _rebuild_tier_sql(tier, first, last)
            return events.count(), written
        fields = [name if name != "savings" else "cache_savings" for name in ROLLUP_INPUT_FIELDS]
        inputs = [RollupInput(*values) for values in events.values_list(*fields).iterator(chunk_size=10_000)]
        rows = rollup_rows(inputs)
        upsert_rollups(rows)
        return len(inputs), len(rows)

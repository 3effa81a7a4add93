"""Writes for usage: price events, store the new ones, add them to hourly rollups.

The hot path of ingest. Set-based: one INSERT for the batch's events and one upsert for
its rollup rows, on PostgreSQL via ``unnest`` of typed arrays (no parameter limit, one
round trip) and on SQLite via multi-row VALUES; both skip request_ids already stored and
return the ones actually inserted, and only those reach the rollups.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import orjson
from django.db import connection, transaction

from billing.histogram import BUCKET_FIELDS, bucket_index
from billing.models import CostSource, UsageEvent, UsageRollup
from billing.pricing import ZERO, PriceBook, Usage, compute_cost
from bursar.db import prepare_rows


@dataclass(frozen=True)
class EventInput:
    """A validated, attributed native event, ready to be priced and stored."""

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


@dataclass(frozen=True)
class StoredEvent:
    """What the budget hook needs of an event that was newly stored."""

    occurred_at: datetime
    cost: Decimal
    customer_id: int | None
    team_id: int | None
    virtual_key_id: int | None


@dataclass(frozen=True)
class RecordResult:
    inserted: list[StoredEvent]
    duplicates: int
    unpriced: int


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
ROLLUP_KEY = ("bucket", "customer_id", "team_id", "virtual_key_id", "provider", "model", "pipeline_stage")
ROLLUP_SUMS = (
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
    *BUCKET_FIELDS,
)
_MONEY_SUMS = {"cost", "cache_savings"}


@dataclass
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
            usage = Usage(
                input_tokens=event.input_tokens,
                output_tokens=event.output_tokens,
                cached_input_tokens=event.cached_input_tokens,
                cache_write_tokens=event.cache_write_tokens,
                images=event.images,
                gpu_seconds=event.gpu_seconds,
                is_success=event.status < 400,
            )
            list_cost = compute_cost(price, usage)
        is_cache_hit = event.cache != "none"
        if event.cost is not None:
            cost, source = event.cost, CostSource.GATEWAY
        elif is_cache_hit:
            cost, source = ZERO, CostSource.GATEWAY
        elif list_cost is not None:
            cost, source = list_cost, CostSource.CATALOG
        else:
            cost, source = None, CostSource.UNPRICED
        savings = max(list_cost - (cost or ZERO), ZERO) if is_cache_hit and list_cost is not None else ZERO
        priced.append(
            _Priced(event, cost, source, price.pk if price and source == CostSource.CATALOG else None, savings)
        )
    return priced


def _event_row(item: _Priced, *, batch_id: UUID | None, node_id: int | None, received_at: datetime) -> list[Any]:
    e = item.event
    return [
        e.request_id, e.occurred_at, received_at, batch_id, node_id, e.customer_id, e.team_id, e.virtual_key_id,
        e.virtual_key_ref, e.customer_ref, e.team_ref, e.end_user, e.provider, e.model, e.operation,
        e.input_tokens, e.output_tokens, e.cached_input_tokens, e.cache_write_tokens, e.images, e.gpu_seconds,
        item.cost, item.source, "USD", item.price_id, e.latency_ms, e.ttft_ms, e.status, e.cache, item.savings,
        e.fallback, e.pipeline_stage, e.tags, e.units,
    ]  # fmt: skip


def _insert_events(rows: list[list[Any]]) -> set[str]:
    """Insert rows, skipping request_ids already stored; the request_ids inserted."""
    table = UsageEvent._meta.db_table
    names = ", ".join(name for name, _ in EVENT_COLUMNS)
    inserted: set[str] = set()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            arrays = ", ".join(f"%s::{'text' if kind == 'jsonb' else kind}[]" for _, kind in EVENT_COLUMNS)
            select = ", ".join(f"c.{name}::jsonb" if kind == "jsonb" else f"c.{name}" for name, kind in EVENT_COLUMNS)
            json_columns = [index for index, (_, kind) in enumerate(EVENT_COLUMNS) if kind == "jsonb"]
            for row in rows:
                for index in json_columns:
                    row[index] = orjson.dumps(row[index]).decode()
            columns = [list(column) for column in zip(*rows, strict=True)]
            cursor.execute(
                f"INSERT INTO {table} ({names}) SELECT {select} FROM unnest({arrays}) AS c({names}) "  # noqa: S608
                "ON CONFLICT (request_id) DO NOTHING RETURNING request_id",
                columns,
            )
            inserted.update(row[0] for row in cursor.fetchall())
        else:
            rows = prepare_rows(UsageEvent, [name for name, _ in EVENT_COLUMNS], rows)
            per_row = "(" + ", ".join(["%s"] * len(EVENT_COLUMNS)) + ")"
            chunk = max(1, 30_000 // len(EVENT_COLUMNS))  # SQLite's bound-parameter limit is 32,766
            for start in range(0, len(rows), chunk):
                part = rows[start : start + chunk]
                cursor.execute(
                    f"INSERT INTO {table} ({names}) VALUES {', '.join([per_row] * len(part))} "  # noqa: S608
                    "ON CONFLICT (request_id) DO NOTHING RETURNING request_id",
                    [value for row in part for value in row],
                )
                inserted.update(row[0] for row in cursor.fetchall())
    return inserted


@dataclass(frozen=True)
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


def rollup_rows(items: Sequence[RollupInput]) -> list[list[Any]]:
    """Aggregate events into rollup rows (key columns, then ``ROLLUP_SUMS``), sorted."""
    sums: dict[tuple[Any, ...], dict[str, Any]] = {}
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
            row = sums[key] = defaultdict(int, cost=ZERO, cache_savings=ZERO)
        row["requests"] += 1
        row["errors"] += e.status >= 400
        row["input_tokens"] += e.input_tokens
        row["output_tokens"] += e.output_tokens
        row["cached_input_tokens"] += e.cached_input_tokens
        row["cache_write_tokens"] += e.cache_write_tokens
        row["images"] += e.images
        row["cost"] += e.cost or ZERO
        row["unpriced_requests"] += e.cost is None
        row["cache_hits"] += e.cache != "none"
        row["cache_savings"] += e.savings
        row["fallbacks"] += e.fallback
        if e.latency_ms is not None:
            row["latency_count"] += 1
            row["latency_sum_ms"] += e.latency_ms
            row[BUCKET_FIELDS[bucket_index(e.latency_ms)]] += 1
    # Sorted: concurrent workers take row locks in the same order, so never deadlock.
    return [[*key, *(values[name] for name in ROLLUP_SUMS)] for key, values in sorted(sums.items())]


def upsert_rollups(rows: list[list[Any]], *, sign: int = 1) -> None:
    """Add (``sign=-1``: subtract) rollup rows to the stored ones, creating missing rows."""
    if not rows:
        return
    table = UsageRollup._meta.db_table
    columns = (*ROLLUP_KEY, *ROLLUP_SUMS)
    names = ", ".join(columns)
    operator = "+" if sign > 0 else "-"
    updates = ", ".join(f"{name} = {table}.{name} {operator} excluded.{name}" for name in ROLLUP_SUMS)
    if sign < 0:
        rows = [[*row[: len(ROLLUP_KEY)], *(-value for value in row[len(ROLLUP_KEY) :])] for row in rows]
        updates = ", ".join(f"{name} = {table}.{name} + excluded.{name}" for name in ROLLUP_SUMS)
    conflict = f"ON CONFLICT ({', '.join(ROLLUP_KEY)}) DO UPDATE SET {updates}"
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            kinds = ["timestamptz", "bigint", "bigint", "bigint", "text", "text", "text"] + [
                "numeric" if name in _MONEY_SUMS else "bigint" for name in ROLLUP_SUMS
            ]
            arrays = ", ".join(f"%s::{kind}[]" for kind in kinds)
            cursor.execute(
                f"INSERT INTO {table} ({names}) SELECT * FROM unnest({arrays}) {conflict}",  # noqa: S608
                [list(column) for column in zip(*rows, strict=True)],
            )
        else:
            rows = prepare_rows(UsageRollup, columns, rows)
            per_row = "(" + ", ".join(["%s"] * len(columns)) + ")"
            chunk = max(1, 30_000 // len(columns))
            for start in range(0, len(rows), chunk):
                part = rows[start : start + chunk]
                cursor.execute(
                    f"INSERT INTO {table} ({names}) VALUES {', '.join([per_row] * len(part))} {conflict}",  # noqa: S608
                    [value for row in part for value in row],
                )


def record_usage(
    *, events: Sequence[EventInput], batch_id: UUID | None, node_id: int | None, received_at: datetime
) -> RecordResult:
    """Price and store events not seen before, and add exactly those to the rollups.

    Must run inside the caller's transaction (the batch's): the events, the rollups and
    whatever the caller charges to budgets commit together or not at all.
    Side effects: UsageEvent rows (one INSERT), UsageRollup rows (one upsert).
    """
    unique: dict[str, EventInput] = {}
    for event in events:
        unique.setdefault(event.request_id, event)  # a duplicate inside one batch counts once
    ordered = sorted(unique.values(), key=lambda event: event.request_id)
    priced = price_events(ordered, PriceBook.load())
    rows = [_event_row(item, batch_id=batch_id, node_id=node_id, received_at=received_at) for item in priced]
    inserted_ids = _insert_events(rows) if rows else set()
    fresh = [item for item in priced if item.event.request_id in inserted_ids]
    upsert_rollups(rollup_rows([_as_rollup_input(item) for item in fresh]))
    return RecordResult(
        inserted=[
            StoredEvent(
                item.event.occurred_at,
                item.cost or ZERO,
                item.event.customer_id,
                item.event.team_id,
                item.event.virtual_key_id,
            )
            for item in fresh
        ],
        duplicates=len(events) - len(fresh),
        unpriced=sum(item.cost is None for item in fresh),
    )


def rebuild_rollups(*, start: datetime, end: datetime) -> tuple[int, int]:
    """Recompute the rollups of the hours in ``[start, end)`` from stored events.

    For repairs (a bug fixed, rows edited by hand). Hour-aligned: the range is widened to
    whole hours. Runs in one transaction; returns (events read, rollup rows written).
    Side effects: deletes and re-creates UsageRollup rows of those hours.
    """
    first = start.replace(minute=0, second=0, microsecond=0)
    last = (
        end
        if end == end.replace(minute=0, second=0, microsecond=0)
        else end.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    )
    fields = [name if name != "savings" else "cache_savings" for name in ROLLUP_INPUT_FIELDS]
    with transaction.atomic():
        UsageRollup.objects.filter(bucket__gte=first, bucket__lt=last).delete()
        events = UsageEvent.objects.filter(occurred_at__gte=first, occurred_at__lt=last).order_by("id")
        read = 0
        written = 0
        chunk: list[RollupInput] = []
        for values in events.values_list(*fields).iterator(chunk_size=10_000):
            chunk.append(RollupInput(*values))
            if len(chunk) >= 50_000:
                rows = rollup_rows(chunk)
                upsert_rollups(rows)
                read, written, chunk = read + len(chunk), written + len(rows), []
        rows = rollup_rows(chunk)
        upsert_rollups(rows)
    return read + len(chunk), written + len(rows)

"""Accepting batches (the outbox) and processing them exactly once."""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import orjson
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, F, Sum
from django.utils import timezone
from kombu.exceptions import OperationalError as KombuOperationalError

from billing.services import EventInput, record_usage
from bursar.gcpause import gc_paused
from governance.actors import Actor
from governance.models import GatewayNode
from governance.selectors import Attribution, resolve_attribution
from governance.services.nodes import mark_gateway_node_seen
from governance.services.organization import ensure_customers
from governance.services.spend import SpendCharge, charge_spend
from ingest.formats import ParsedBody, Rejected
from ingest.models import BatchState, IngestBatch, IngestTotals
from ingest.schema import validate_event

logger = logging.getLogger("bursar.ingest")


@dataclass(frozen=True)
class Acceptance:
    batch_id: UUID | None
    accepted: int
    rejected: list[dict[str, Any]]
    ignored: int


def accept_batch(*, node: GatewayNode, format: str, parsed: ParsedBody, now: datetime) -> Acceptance:
    """Validate each item alone; store the valid ones durably and queue their processing.

    Side effects: one IngestBatch row (committed before returning) when anything was
    valid; the processing task queued after commit; the node's last-seen time.
    """
    events: list[dict[str, Any]] = []
    rejected: list[dict[str, Any]] = []
    payload, count = parsed.validated_json, parsed.validated_count
    for index, item in enumerate(parsed.items):
        if isinstance(item, Rejected):
            rejected.append({"index": index, "errors": item.errors})
            continue
        event, errors = validate_event(item)
        if errors is not None:
            rejected.append({"index": index, "errors": errors})
        else:
            events.append(event)  # type: ignore[arg-type]
    if payload is None and events:
        payload, count = orjson.dumps(events), len(events)
    batch_id = None
    with transaction.atomic():
        mark_gateway_node_seen(node=node, now=now)
        if payload is not None:
            batch = IngestBatch.objects.create(
                node_id=node.pk, format=format, received_at=now, accepted=count, rejected=len(rejected), events=payload
            )
            batch_id = batch.id
            transaction.on_commit(lambda: enqueue_batch(batch_id=batch.id))
    return Acceptance(batch_id=batch_id, accepted=count, rejected=rejected, ignored=parsed.ignored)


def enqueue_batch(*, batch_id: UUID) -> None:
    """Queue processing; if the broker is unreachable the batch stays pending and the
    sweeper queues it again, so accepting never depends on the broker being up."""
    from ingest.tasks import process_batch_task

    try:
        process_batch_task.delay(str(batch_id))
    except (KombuOperationalError, ConnectionError, OSError) as error:  # the broker, not the work
        logger.warning(
            "could not queue batch; the sweeper will retry it", extra={"batch_id": str(batch_id), "error": str(error)}
        )


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _attribute(
    raw: list[tuple[IngestBatch, dict[str, Any]]], attribution: Attribution, customer_ids: dict[str, int]
) -> list[EventInput]:
    inputs: list[EventInput] = []
    for batch, event in raw:
        key_ref, customer_ref, team_ref = _text(event["virtual_key"]), _text(event["customer"]), _text(event["team"])
        owner = attribution.keys.get(key_ref)
        team = attribution.teams.get(team_ref)
        # The key knows its team and customer; an explicit customer or team fills gaps.
        team_id = owner.team_id if owner and owner.team_id else (team[0] if team else None)
        customer_id = (
            (owner.customer_id if owner else None) or customer_ids.get(customer_ref) or (team[1] if team else None)
        )
        inputs.append(
            EventInput(
                batch_id=batch.id,
                node_id=batch.node_id,
                received_at=batch.received_at,
                request_id=event["request_id"],
                occurred_at=datetime.fromisoformat(event["timestamp"]),
                customer_id=customer_id,
                team_id=team_id,
                virtual_key_id=owner.virtual_key_id if owner else None,
                virtual_key_ref="" if owner else key_ref,
                customer_ref="" if customer_id else customer_ref,
                team_ref="" if team_id else team_ref,
                end_user=_text(event["end_user"]),
                provider=event["provider"],
                model=event["model"],
                operation=event["operation"],
                input_tokens=event["input_tokens"],
                output_tokens=event["output_tokens"],
                cached_input_tokens=event["cached_input_tokens"],
                cache_write_tokens=event["cache_write_tokens"],
                images=event["images"],
                gpu_seconds=Decimal(event["gpu_seconds"]),
                cost=Decimal(event["cost"]) if event["cost"] is not None else None,
                latency_ms=event["latency_ms"],
                ttft_ms=event["ttft_ms"],
                status=event["status"],
                cache=event["cache"],
                fallback=event["fallback"],
                pipeline_stage=_text(event["pipeline_stage"]),
                tags=event["tags"],
                units=event["units"],
            )
        )
    return inputs


@dataclass(frozen=True)
class BatchOutcome:
    state: str
    inserted: int = 0
    duplicates: int = 0
    processed_with: int = 0  # other pending batches stored in the same transaction


def _claim(batch_id: UUID, *, alone: bool = False) -> list[IngestBatch]:
    """Lock ``batch_id`` and up to INGEST_BATCHES_PER_TRANSACTION - 1 other pending
    batches, skipping any another worker holds. Grouping shares one INSERT, one rollup
    upsert and one commit across batches; exactly-once holds since all commit together."""
    pending = IngestBatch.objects.select_for_update(skip_locked=True).filter(state=BatchState.PENDING)
    first = pending.filter(pk=batch_id).first()
    if first is None or alone:
        return [first] if first else []
    others = pending.exclude(pk=batch_id).order_by("received_at")[: settings.INGEST_BATCHES_PER_TRANSACTION - 1]
    return [first, *others]


def process_batch(*, batch_id: UUID, alone: bool = False) -> BatchOutcome:
    """Store a pending batch's new events, roll them up and charge budgets, in ONE
    transaction, exactly once (with whatever other pending batches ``_claim`` takes along).

    Batch rows are claimed with ``SELECT … FOR UPDATE SKIP LOCKED``: a second worker
    handed the same batch (a redelivery, the sweeper) skips it, and a worker that dies
    mid-way rolls everything back, leaving the batches pending for a retry.
    Side effects: UsageEvent, UsageRollup, BudgetPeriod (and auto-created Customer)
    rows; the IngestBatch rows marked processed.
    """
    started = time.perf_counter()
    with gc_paused(), transaction.atomic():
        if connection.vendor == "postgresql":
            # Safe without waiting for the WAL flush: if this commit were lost in a crash,
            # the batches' "processed" mark is lost with it, they are still pending in the
            # outbox, and the sweeper processes them again. The accepting commit (the
            # promise behind the 202) stays synchronous.
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL synchronous_commit = off")
        batches = _claim(batch_id, alone=alone)
        if not batches:
            current = IngestBatch.objects.filter(pk=batch_id).values_list("state", flat=True).first()
            return BatchOutcome(state=current or "missing")
        raw = [(batch, event) for batch in batches for event in orjson.loads(batch.events)]
        customer_refs = {_text(event["customer"]) for _, event in raw} - {""}
        attribution = resolve_attribution(
            key_refs={_text(event["virtual_key"]) for _, event in raw} - {""},
            customer_refs=customer_refs,
            team_refs={_text(event["team"]) for _, event in raw} - {""},
        )
        customer_ids = dict(attribution.customers)
        missing = customer_refs - customer_ids.keys()
        if missing and settings.INGEST_AUTO_CREATE_CUSTOMERS:
            customer_ids.update(ensure_customers(actor=Actor.system("ingest"), external_ids=missing))
        result = record_usage(events=_attribute(raw, attribution, customer_ids))
        charge_spend(
            charges=[
                SpendCharge(e.occurred_at, e.cost, e.customer_id, e.team_id, e.virtual_key_id) for e in result.inserted
            ]
        )
        inserted = Counter(event.batch_id for event in result.inserted)
        unpriced = Counter(event.batch_id for event in result.inserted if event.is_unpriced)
        elapsed_ms = round((time.perf_counter() - started) * 1000)
        now = timezone.now()
        for batch in batches:
            batch.state = BatchState.PROCESSED
            batch.inserted = inserted[batch.id]
            batch.duplicates = batch.accepted - batch.inserted
            batch.unpriced = unpriced[batch.id]
            batch.attempts += 1
            batch.processed_at = now
            # The transaction's time, shared out by size so per-batch sums stay true.
            batch.processing_ms = round(elapsed_ms * batch.accepted / len(raw))
        IngestBatch.objects.bulk_update(
            batches, ["state", "inserted", "duplicates", "unpriced", "attempts", "processed_at", "processing_ms"]
        )
    first = batches[0]
    return BatchOutcome(
        state=BatchState.PROCESSED,
        inserted=first.inserted or 0,
        duplicates=first.duplicates or 0,
        processed_with=len(batches) - 1,
    )


def mark_batch_failed(*, batch_id: UUID, error: str) -> None:
    """Give up on a batch after its retries (it stays visible with the error).

    Side effects: a conditional UPDATE of the IngestBatch row (only while pending).
    """
    IngestBatch.objects.filter(pk=batch_id, state=BatchState.PENDING).update(
        state=BatchState.FAILED, last_error=error[:2000]
    )


def requeue_stale_batches(*, now: datetime, older_than: timedelta = timedelta(seconds=30)) -> int:
    """Queue again every batch still pending after ``older_than`` (broker was down, a
    worker died). Processing is idempotent, so queuing one twice is harmless.

    Side effects: tasks queued; no rows written.
    """
    stale = list(
        IngestBatch.objects.filter(state=BatchState.PENDING, received_at__lt=now - older_than)
        .order_by("received_at")
        .values_list("id", flat=True)[:5000]
    )
    for batch_id in stale:
        enqueue_batch(batch_id=batch_id)
    return len(stale)


def purge_processed_batches(*, now: datetime, older_than: timedelta = timedelta(days=7)) -> int:
    """Delete processed batches past retention (their events live on as UsageEvent rows),
    folding their counts into IngestTotals in the same transaction.

    Side effects: IngestTotals increments; IngestBatch rows deleted.
    """
    with transaction.atomic():
        doomed = IngestBatch.objects.filter(state=BatchState.PROCESSED, processed_at__lt=now - older_than)
        sums = doomed.values("node_id", "format").annotate(
            batches=Count("id"),
            accepted_sum=Sum("accepted"),
            rejected_sum=Sum("rejected"),
            inserted_sum=Sum("inserted"),
            duplicates_sum=Sum("duplicates"),
            processing_sum=Sum("processing_ms"),
        )
        for row in sums:
            totals, _ = IngestTotals.objects.select_for_update().get_or_create(
                node_id=row["node_id"], format=row["format"]
            )
            IngestTotals.objects.filter(pk=totals.pk).update(
                batches=F("batches") + row["batches"],
                accepted=F("accepted") + (row["accepted_sum"] or 0),
                rejected=F("rejected") + (row["rejected_sum"] or 0),
                inserted=F("inserted") + (row["inserted_sum"] or 0),
                duplicates=F("duplicates") + (row["duplicates_sum"] or 0),
                processing_ms=F("processing_ms") + (row["processing_sum"] or 0),
            )
        deleted, _ = doomed.delete()
    return deleted

"""Writes for prices and re-pricing (admin actions, audited)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from billing.catalog import RATE_FIELDS
from billing.models import CostSource, ModelPrice, RepriceJob, RepriceState, UsageEvent
from billing.pricing import ZERO, PriceBook, Usage, compute_cost, stored_amount
from billing.services import upsert_rollups
from billing.tiers import ROLLUP_SUMS
from bursar.errors import Conflict, InvalidInput
from governance.actors import Actor
from governance.services.audit import record_audit, snapshot
from governance.services.spend import SpendCharge, charge_spend

PRICE_FIELDS = ("provider", "model", "effective_from", "currency", *RATE_FIELDS)
CHUNK = 5000


@transaction.atomic
def add_price(*, actor: Actor, **fields: Any) -> ModelPrice:
    """Add a price version; it applies to events from ``effective_from`` on. Stored events
    keep their cost until an admin re-prices them.

    Side effects: one ModelPrice row, one AuditEntry.
    """
    model = fields["model"]
    if "*" in model[:-1]:
        raise InvalidInput("only a trailing * is allowed (a prefix pattern)", field="model")
    price = ModelPrice(**fields, source=f"added by {actor.label}")
    price.full_clean(validate_unique=False, validate_constraints=False)
    try:
        with transaction.atomic():
            price.save()
    except IntegrityError:
        raise Conflict(
            "a price for this provider and model already starts at that time", field="effective_from"
        ) from None
    record_audit(actor=actor, action="price.add", instance=price, before=None, after=snapshot(price, PRICE_FIELDS))
    return price


def _events_to_reprice(job: RepriceJob) -> QuerySet[UsageEvent]:
    events = UsageEvent.objects.filter(occurred_at__gte=job.start, occurred_at__lt=job.end).exclude(
        cost_source=CostSource.GATEWAY
    )
    if job.provider:
        events = events.filter(provider=job.provider)
    if job.model:
        events = events.filter(model=job.model)
    return events


@transaction.atomic
def request_reprice(*, actor: Actor, start: datetime, end: datetime, provider: str = "", model: str = "") -> RepriceJob:
    """Record a re-price request; the work runs in a task (``run_reprice``).

    Side effects: one RepriceJob row, one AuditEntry; the task queued after commit.
    """
    if start >= end:
        raise InvalidInput("must be before end", field="start")
    job = RepriceJob.objects.create(start=start, end=end, provider=provider, model=model, requested_by=actor.label)
    job.events_total = _events_to_reprice(job).count()
    job.save(update_fields=["events_total"])
    record_audit(
        actor=actor,
        action="price.reprice",
        instance=job,
        before=None,
        after={"start": start.isoformat(), "end": end.isoformat(), "provider": provider, "model": model,
               "events": job.events_total},
    )  # fmt: skip

    def enqueue() -> None:
        from billing.tasks import run_reprice_task

        run_reprice_task.delay(job.pk)

    transaction.on_commit(enqueue)
    return job


@dataclass
class _Delta:
    cost: Decimal = ZERO
    unpriced: int = 0


def _delta_row(key: tuple[Any, ...], delta: _Delta) -> list[Any]:
    """A rollup row that moves only cost and the unpriced count."""
    sums: dict[str, Any] = dict.fromkeys(ROLLUP_SUMS, 0)
    sums["cost"] = delta.cost
    sums["unpriced_requests"] = delta.unpriced
    return [*key, *sums.values()]


def _reprice_chunk(job: RepriceJob, book: PriceBook) -> bool:
    """Re-price the next chunk in its own transaction; False when nothing was left."""
    with transaction.atomic():
        job = RepriceJob.objects.select_for_update().get(pk=job.pk)
        # Locked in id order: a second job over the same events waits, then reads the new
        # costs and moves nothing twice.
        events = list(
            _events_to_reprice(job).filter(id__gt=job.last_event_id).order_by("id").select_for_update()[:CHUNK]
        )
        if not events:
            return False
        changed: list[UsageEvent] = []
        deltas: dict[tuple[Any, ...], _Delta] = defaultdict(_Delta)
        charges: list[SpendCharge] = []
        for event in events:
            price = book.match(event.provider, event.model, event.occurred_at)
            if price is None or event.cache != "none":
                continue
            usage = Usage.of(event)
            cost = stored_amount(compute_cost(price, usage))
            if event.cost == cost and event.price_id == price.pk:
                continue
            key = (
                event.occurred_at.replace(minute=0, second=0, microsecond=0),
                event.customer_id or 0,
                event.team_id or 0,
                event.virtual_key_id or 0,
                event.provider,
                event.model,
                event.pipeline_stage,
            )
            difference = cost - (event.cost or ZERO)
            deltas[key].cost += difference
            deltas[key].unpriced -= event.cost is None
            charges.append(
                SpendCharge(event.occurred_at, difference, event.customer_id, event.team_id, event.virtual_key_id)
            )
            event.cost, event.cost_source, event.price_id = cost, CostSource.CATALOG, price.pk
            changed.append(event)
        UsageEvent.objects.bulk_update(changed, ["cost", "cost_source", "price_id"], batch_size=1000)
        upsert_rollups([_delta_row(key, delta) for key, delta in sorted(deltas.items())])
        charge_spend(charges=charges)
        job.events_done += len(events)
        job.events_changed += len(changed)
        job.cost_delta += sum((charge.cost for charge in charges), ZERO)
        job.last_event_id = events[-1].pk
        job.save(update_fields=["events_done", "events_changed", "cost_delta", "last_event_id"])
    return True


def run_reprice(*, job_id: int) -> RepriceJob:
    """Work through a job chunk by chunk; resumable, and safe to run twice.

    Side effects: UsageEvent costs, UsageRollup and BudgetPeriod deltas, the job's progress.
    """
    claimed = RepriceJob.objects.filter(pk=job_id, state__in=[RepriceState.PENDING, RepriceState.RUNNING]).update(
        state=RepriceState.RUNNING
    )
    job = RepriceJob.objects.get(pk=job_id)
    if not claimed:
        return job
    book = PriceBook.load()
    while _reprice_chunk(job, book):
        pass
    RepriceJob.objects.filter(pk=job_id).update(state=RepriceState.DONE, finished_at=timezone.now())
    job.refresh_from_db()
    return job

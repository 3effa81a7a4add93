"""Celery tasks for ingest: thin wrappers around ``ingest.services``."""

from __future__ import annotations

from uuid import UUID

from celery import shared_task
from django.db import DatabaseError, OperationalError
from django.utils import timezone

from ingest.services import mark_batch_failed, process_batch, purge_processed_batches, requeue_stale_batches

MAX_RETRIES = 8


@shared_task(bind=True, name="ingest.process_batch", acks_late=True, max_retries=MAX_RETRIES)
def process_batch_task(self, batch_id: str) -> dict[str, object]:  # type: ignore[no-untyped-def]
    try:
        outcome = process_batch(batch_id=UUID(batch_id))
    except (OperationalError, DatabaseError) as error:  # transient: deadlock, failover, lock timeout
        if self.request.retries >= MAX_RETRIES:
            mark_batch_failed(batch_id=UUID(batch_id), error=repr(error))
            raise
        raise self.retry(exc=error, countdown=min(2**self.request.retries, 60)) from error
    return {"state": outcome.state, "inserted": outcome.inserted, "duplicates": outcome.duplicates}


@shared_task(name="ingest.requeue_stale_batches", acks_late=True)
def requeue_stale_batches_task() -> dict[str, int]:
    return {"requeued": requeue_stale_batches(now=timezone.now())}


@shared_task(name="ingest.purge_processed_batches", acks_late=True)
def purge_processed_batches_task() -> dict[str, int]:
    return {"purged": purge_processed_batches(now=timezone.now())}

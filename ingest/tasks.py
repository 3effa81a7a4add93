"""Celery tasks for ingest: thin wrappers around ``ingest.services``."""

from __future__ import annotations

import logging
from uuid import UUID

import psycopg
from celery import shared_task
from django.db import InterfaceError, OperationalError
from django.utils import timezone

from ingest.services import mark_batch_failed, process_batch, purge_processed_batches, requeue_stale_batches

MAX_RETRIES = 8
logger = logging.getLogger("bursar.ingest")


# Worth retrying: the database or the network, not the batch (deadlock, failover, timeout).
TRANSIENT = (OperationalError, InterfaceError, psycopg.OperationalError)


@shared_task(bind=True, name="ingest.process_batch", acks_late=True, max_retries=MAX_RETRIES)
def process_batch_task(self, batch_id: str) -> dict[str, object]:  # type: ignore[no-untyped-def]
    """Process a batch (with other pending ones when possible). If the group fails, the
    batch is tried alone, so one bad batch cannot hold back the others; if it fails alone
    for a reason that is not transient, it is marked failed (and shown in /metrics)."""
    key = UUID(batch_id)
    try:
        try:
            outcome = process_batch(batch_id=key)
        except TRANSIENT:
            raise
        except Exception:
            logger.warning("batch group failed; retrying this batch alone", extra={"batch_id": batch_id})
            outcome = process_batch(batch_id=key, alone=True)
    except TRANSIENT as error:
        if self.request.retries >= MAX_RETRIES:
            mark_batch_failed(batch_id=key, error=repr(error))
            raise
        raise self.retry(exc=error, countdown=min(2**self.request.retries, 60)) from error
    except Exception as error:
        logger.exception("batch failed and was set aside", extra={"batch_id": batch_id})
        mark_batch_failed(batch_id=key, error=repr(error))
        return {"state": "failed"}
    return {"state": outcome.state, "inserted": outcome.inserted, "duplicates": outcome.duplicates}


@shared_task(name="ingest.requeue_stale_batches", acks_late=True)
def requeue_stale_batches_task() -> dict[str, int]:
    return {"requeued": requeue_stale_batches(now=timezone.now())}


@shared_task(name="ingest.purge_processed_batches", acks_late=True)
def purge_processed_batches_task() -> dict[str, int]:
    return {"purged": purge_processed_batches(now=timezone.now())}

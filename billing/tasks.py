"""Celery tasks for billing: thin wrappers around services."""

from __future__ import annotations

from celery import shared_task

from billing.repricing import run_reprice


@shared_task(name="billing.run_reprice", acks_late=True)
def run_reprice_task(job_id: int) -> dict[str, object]:
    job = run_reprice(job_id=job_id)
    return {"state": job.state, "events_done": job.events_done, "events_changed": job.events_changed}

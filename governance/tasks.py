"""Celery tasks for governance: thin wrappers around services."""

from __future__ import annotations

from dataclasses import asdict

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from governance.services.alerts import attempt_delivery, due_deliveries
from governance.services.config import converge_nodes, push_config, retry_delay, revise_config
from governance.services.enforcement import reconcile_budgets
from governance.services.virtual_keys import end_grace_windows, expire_virtual_keys


@shared_task(name="governance.expire_virtual_keys", acks_late=True)
def expire_virtual_keys_task() -> dict[str, int]:
    now = timezone.now()
    return {"expired": expire_virtual_keys(now=now), "grace_windows_ended": end_grace_windows(now=now)}


@shared_task(name="governance.reconcile_budgets", acks_late=True)
def reconcile_budgets_task() -> dict[str, int]:
    return asdict(reconcile_budgets(now=timezone.now()))


@shared_task(name="governance.deliver_alert", acks_late=True)
def deliver_alert_task(delivery_id: int) -> str:
    """One attempt; a failure schedules the next after its backoff (with a broker; the
    embedded default has no timer, so there the sweeper's next run retries)."""
    outcome = attempt_delivery(delivery_id=delivery_id, now=timezone.now())
    if outcome.retry_in is not None and not settings.CELERY_TASK_ALWAYS_EAGER:
        deliver_alert_task.apply_async(args=(delivery_id,), countdown=outcome.retry_in.total_seconds() + 1)
    return outcome.state


@shared_task(name="governance.retry_alert_deliveries", acks_late=True)
def retry_alert_deliveries_task() -> dict[str, int]:
    """Queue deliveries that are due (their countdown task was lost, or the broker was
    down when the alert fired). The claim in ``attempt_delivery`` makes doubles harmless."""
    due = due_deliveries(now=timezone.now())
    for delivery_id in due:
        deliver_alert_task.delay(delivery_id)
    return {"queued": len(due)}


def _schedule_retries(failed: list[int]) -> None:
    """Each failed node gets its next attempt after its backoff (the converge pass is
    the safety net when a retry task is lost, and the only timer without a broker)."""
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return
    for node_id in failed:
        delay = retry_delay(node_id)
        if delay is not None:
            push_config_task.apply_async(args=([node_id], False), countdown=delay)


@shared_task(name="governance.revise_and_push", acks_late=True)
def revise_and_push_task(reason: str, urgent: bool = False, covering: int | None = None) -> dict[str, object]:
    revision = revise_config(reason=reason, urgent=urgent, covering=covering)
    if revision is None:
        return {"revision": None}
    report = push_config()
    _schedule_retries(list(report.failed))
    return {"revision": revision.version, "pushed": len(report.pushed), "failed": len(report.failed)}


@shared_task(name="governance.push_config", acks_late=True)
def push_config_task(node_ids: list[int] | None = None, force: bool = False) -> dict[str, object]:
    report = push_config(node_ids=node_ids, force=force)
    _schedule_retries(list(report.failed))
    return {"version": report.version, "pushed": len(report.pushed), "failed": len(report.failed)}


@shared_task(name="governance.converge_config", acks_late=True)
def converge_config_task() -> dict[str, int]:
    return asdict(converge_nodes(now=timezone.now()))

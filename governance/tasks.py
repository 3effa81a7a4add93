"""Celery tasks for governance: thin wrappers around services."""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from governance.services.virtual_keys import expire_virtual_keys


@shared_task(name="governance.expire_virtual_keys", acks_late=True)
def expire_virtual_keys_task() -> dict[str, int]:
    return {"expired": expire_virtual_keys(now=timezone.now())}

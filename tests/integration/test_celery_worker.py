"""A task sent through the real broker is run by a real worker process."""

import time
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from governance.models import AuditEntry, VirtualKey
from governance.tasks import expire_virtual_keys_task
from tests.factories import make_key

pytestmark = pytest.mark.integration


def test_worker_on_the_real_broker_expires_a_key_past_its_expiry(celery_worker_queue):
    assert settings.CELERY_BROKER_URL and not settings.CELERY_TASK_ALWAYS_EAGER
    key = make_key(expires_at=timezone.now() + timedelta(milliseconds=300)).key
    time.sleep(0.4)

    expire_virtual_keys_task.apply_async(queue=celery_worker_queue)

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        key.refresh_from_db()
        if key.status == "expired":
            break
        time.sleep(0.2)
    assert key.status == "expired"
    entry = AuditEntry.objects.get(action="virtual_key.expire")
    assert entry.actor == "system:expiry" and entry.object_id == str(key.pk)
    assert VirtualKey.objects.filter(status="active").count() == 0

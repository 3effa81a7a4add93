"""The Celery application.

With ``CELERY_BROKER_URL`` set (Redis or RabbitMQ) tasks go through the broker to
``celery worker`` processes. Without it (the embedded default) tasks run in-process,
synchronously, so a laptop needs no broker; production always sets a broker.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bursar.settings")

app = Celery("bursar")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

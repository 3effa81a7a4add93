from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]


def database_url_of_test_db() -> str:
    """The URL of the database pytest-django created, for processes started by a test."""
    s = connection.settings_dict
    user = quote(s["USER"] or "")
    password = f":{quote(s['PASSWORD'])}" if s.get("PASSWORD") else ""
    return f"postgres://{user}{password}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


@pytest.fixture
def celery_worker_queue(transactional_db: None) -> Iterator[str]:
    """A real ``celery worker`` process on the real broker, consuming a queue of its own."""
    if connection.vendor != "postgresql":
        pytest.fail("the worker integration test needs PostgreSQL (DATABASE_URL)")
    from bursar.celery import app

    queue = f"bursar-test-{uuid.uuid4().hex[:8]}"
    # Work queued by this process (and its live server thread) goes to this worker only.
    previous_queue = app.conf.task_default_queue
    app.conf.task_default_queue = queue
    # Tasks the worker itself queues (alert deliveries, retries) stay on this queue too.
    env = os.environ | {"DATABASE_URL": database_url_of_test_db(), "CELERY_TASK_DEFAULT_QUEUE": queue}
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "bursar",
            "worker",
            "--pool=solo",
            "-Q",
            queue,
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-l",
            "warning",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield queue
    finally:
        app.conf.task_default_queue = previous_queue
        worker.terminate()
        try:
            output, _ = worker.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
            output, _ = worker.communicate()
        if "Traceback" in output:
            print(output)  # noqa: T201 - shown by pytest only when the test fails

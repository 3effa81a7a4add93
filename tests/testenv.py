"""Loaded by pytest (``-p tests.testenv``) before Django reads its settings.

The suite runs with production settings (DEBUG off) against real PostgreSQL and
Redis; only the HTTPS-only switches are relaxed because test clients speak plain HTTP.
Variables already set in the environment (as ``.ci/run`` sets them) win.
"""

import os

TEST_DEFAULTS = {
    "DEBUG": "0",
    "SECRET_KEY": "test-secret-key-not-for-production-8c1f0b7e2d5a4c3b9e6f1a0d7c2b5e8f",
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/bursar",
    "CELERY_BROKER_URL": "redis://127.0.0.1:6379/0",
    "SECURE_SSL_REDIRECT": "0",
    "SESSION_COOKIE_SECURE": "0",
    "CSRF_COOKIE_SECURE": "0",
    "LOG_FORMAT": "text",
    "LOG_LEVEL": "warning",
}

for name, value in TEST_DEFAULTS.items():
    os.environ.setdefault(name, value)

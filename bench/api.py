"""Governance API latency at a realistic object count.

Builds (once) a PostgreSQL database with 1,000 customers, 2,000 teams, 20,000 virtual
keys and 5,000 budgets, then times each endpoint in-process through the full Django +
DRF stack (middleware, auth, permissions, filters, serialization; no network) and
prints p50 / p95 / max in milliseconds.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bursar_bench .venv/bin/python bench/api.py
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bursar.settings")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/bursar_bench")
os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-0123456789abcdefghijklmnop")
os.environ.setdefault("ALLOWED_HOSTS", "testserver")
os.environ.setdefault("SECURE_SSL_REDIRECT", "0")
os.environ.setdefault("LOG_LEVEL", "error")

CUSTOMERS, TEAMS, KEYS, BUDGETS = 1_000, 2_000, 20_000, 5_000
RUNS = 200


def ensure_database() -> None:
    import psycopg
    from django.conf import settings

    db = settings.DATABASES["default"]
    if db["ENGINE"] != "django.db.backends.postgresql":
        sys.exit("bench/api.py measures PostgreSQL: set DATABASE_URL=postgres://…")
    with psycopg.connect(
        host=db["HOST"],
        port=db["PORT"] or 5432,
        user=db["USER"],
        password=db["PASSWORD"] or None,
        dbname="postgres",
        autocommit=True,
    ) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [db["NAME"]]).fetchone():
            conn.execute(f'CREATE DATABASE "{db["NAME"]}"')


def populate() -> None:
    from governance.models import Budget, Customer, Team, VirtualKey

    if VirtualKey.objects.count() >= KEYS:
        return
    print(f"populating {CUSTOMERS} customers, {TEAMS} teams, {KEYS} keys, {BUDGETS} budgets …", flush=True)
    customers = Customer.objects.bulk_create(
        Customer(external_id=f"customer_{n}", name=f"Customer {n}") for n in range(CUSTOMERS)
    )
    teams = Team.objects.bulk_create(
        Team(slug=f"team-{n}", name=f"Team {n}", customer=customers[n % CUSTOMERS]) for n in range(TEAMS)
    )
    keys = VirtualKey.objects.bulk_create(
        (
            VirtualKey(
                public_id=f"vk_bench{n:08d}",
                name=f"key {n}",
                team=teams[n % TEAMS],
                customer=teams[n % TEAMS].customer,
                secret_prefix=f"vk_{n:08d}",
                secret_sha256=f"{n:064x}",
                allowed_models=["openai/*", "anthropic/*"],
                requests_per_minute=600,
            )
            for n in range(KEYS)
        ),
        batch_size=2000,
    )
    Budget.objects.bulk_create(
        Budget(scope_type="virtual_key", virtual_key=keys[n], amount=Decimal("100")) for n in range(BUDGETS)
    )


def measure(name: str, call: Callable[[], int], expected: int) -> None:
    timings = []
    for _ in range(RUNS):
        start = time.perf_counter()
        status = call()
        timings.append((time.perf_counter() - start) * 1000)
        if status != expected:
            sys.exit(f"{name}: got HTTP {status}, expected {expected}")
    timings.sort()
    p95 = timings[int(len(timings) * 0.95) - 1]
    print(f"{name:<44} p50 {statistics.median(timings):7.2f} ms   p95 {p95:7.2f} ms   max {timings[-1]:7.2f} ms")


def main() -> None:
    import django

    django.setup()
    from django.core.management import call_command

    ensure_database()
    call_command("migrate", verbosity=0)
    populate()

    from django.utils import timezone
    from rest_framework.test import APIClient

    from governance.actors import Actor
    from governance.models import Budget, Customer, VirtualKey
    from governance.services.api_tokens import create_api_token

    token = create_api_token(actor=Actor.command("bench"), name="bench", role="admin", now=timezone.now()).secret
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    customer = Customer.objects.order_by("pk")[CUSTOMERS // 2]
    key = VirtualKey.objects.order_by("pk")[KEYS // 2]
    budget = Budget.objects.order_by("pk").first()
    assert budget is not None
    amounts = iter(range(1, 10**9))

    print(
        f"{Customer.objects.count()} customers, {VirtualKey.objects.count()} keys, {Budget.objects.count()} budgets; "
        f"{RUNS} requests each"
    )
    measure("GET customers/ (page of 50)", lambda: client.get("/api/v1/customers/").status_code, 200)
    measure(
        "GET customers/?search=Customer 5", lambda: client.get("/api/v1/customers/?search=Customer 5").status_code, 200
    )
    measure("GET virtual-keys/ (page of 50)", lambda: client.get("/api/v1/virtual-keys/").status_code, 200)
    measure(
        "GET virtual-keys/?customer=<id>",
        lambda: client.get(f"/api/v1/virtual-keys/?customer={customer.pk}").status_code,
        200,
    )
    measure("GET virtual-keys/<id>/", lambda: client.get(f"/api/v1/virtual-keys/{key.pk}/").status_code, 200)
    measure("GET budgets/ (page of 50)", lambda: client.get("/api/v1/budgets/").status_code, 200)
    measure(
        "POST virtual-keys/ (issue, audited)",
        lambda: client.post("/api/v1/virtual-keys/", {"name": "bench"}, format="json").status_code,
        201,
    )
    measure(
        "PATCH budgets/<id>/ (audited)",
        lambda: (
            client.patch(f"/api/v1/budgets/{budget.pk}/", {"amount": str(next(amounts))}, format="json").status_code
        ),
        200,
    )


if __name__ == "__main__":
    main()

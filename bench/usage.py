"""Usage API and customer spend latency at 10 million events, from rollups.

Builds (once, then reused) a PostgreSQL database with 1,000 customers, 2,000 keys and
10 million events over 90 days, generated inside PostgreSQL with skewed traffic (a few
large customers, a long tail, as real gateways see), and the hourly rollups built from
them with ``rebuild_rollups``. Then times the usage API through the full Django + DRF
stack (auth, validation, serialization; no network) and the customer spend selector.

    .venv/bin/python bench/usage.py [--events 10000000] [--runs 40] [--rebuild]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import setup_django

DATABASE = "bursar_bench_usage"
CUSTOMERS = 1000
DAYS = 90
MODELS = [
    ("openai", "gpt-4o-mini"),
    ("openai", "gpt-4.1"),
    ("anthropic", "claude-haiku-4-5"),
    ("anthropic", "claude-sonnet-4-5"),
    ("google", "gemini-2.5-flash"),
    ("mistral", "mistral-small-latest"),
]


def populate(total: int, end: datetime) -> None:
    from django.db import connection

    from billing.services import rebuild_rollups
    from governance.models import Customer, Team, VirtualKey

    print(f"creating {CUSTOMERS:,} customers and {2 * CUSTOMERS:,} keys …", flush=True)
    customers = Customer.objects.bulk_create(
        Customer(external_id=f"customer_{n:04d}", name=f"Customer {n}") for n in range(CUSTOMERS)
    )
    teams = Team.objects.bulk_create(
        Team(slug=f"team-{n:04d}", name=f"Team {n}", customer=c) for n, c in enumerate(customers)
    )
    VirtualKey.objects.bulk_create(
        VirtualKey(
            public_id=f"vk_bench{n:06d}",
            name=f"key {n}",
            team=teams[n // 2],
            customer=customers[n // 2],
            secret_prefix=f"vk_{n:08d}",
            secret_sha256=f"{n:064x}",
        )
        for n in range(2 * CUSTOMERS)
    )
    first_customer = customers[0].pk
    first_team = teams[0].pk
    first_key = VirtualKey.objects.order_by("pk").values_list("pk", flat=True).first()
    providers = "ARRAY[" + ", ".join(f"'{p}'" for p, _ in MODELS) + "]"
    models = "ARRAY[" + ", ".join(f"'{m}'" for _, m in MODELS) + "]"
    print(f"generating {total:,} events over {DAYS} days inside PostgreSQL …", flush=True)
    started = time.perf_counter()
    with connection.cursor() as cursor:
        # c: customer index, skewed (random()^3): the top 10% send about half the traffic.
        cursor.execute(
            f"""
            INSERT INTO billing_usageevent (
                request_id, occurred_at, received_at, customer_id, team_id, virtual_key_id, virtual_key_ref,
                customer_ref, team_ref, end_user, provider, model, operation, input_tokens, output_tokens,
                cached_input_tokens, cache_write_tokens, images, gpu_seconds, cost, cost_source, currency,
                latency_ms, status, cache, cache_savings, fallback, pipeline_stage, tags, units)
            SELECT 'bench-' || g, t, t, {first_customer} + c, {first_team} + c, {first_key} + c * 2 + (g %% 2),
                   '', '', '', '', ({providers})[m], ({models})[m], 'chat',
                   200 + (g %% 3000), 20 + (g %% 700), 0, 0, 0, 0,
                   round((0.00001 + (g %% 997) * 0.000004)::numeric, 10), 'catalog', 'USD',
                   50 + (g %% 2900), CASE WHEN g %% 50 = 0 THEN 500 ELSE 200 END, 'none', 0, false,
                   (ARRAY['caption', 'rewrite', 'rerank', ''])[1 + g %% 4], '{{}}', '{{}}'
            FROM (
                SELECT g,
                       %s::timestamptz - (random() * interval '{DAYS} days') AS t,
                       floor({CUSTOMERS} * power(random(), 3))::int AS c,
                       1 + floor(random() * {len(MODELS)})::int AS m
                FROM generate_series(1, %s) AS g
            ) AS s
            """,  # noqa: S608 - benchmark set-up with fixed values
            [end, total],
        )
    print(f"  {time.perf_counter() - started:.0f} s; building rollups …", flush=True)
    started = time.perf_counter()
    events, rows = rebuild_rollups(start=end - timedelta(days=DAYS + 1), end=end)
    print(f"  {rows:,} rollup rows from {events:,} events in {time.perf_counter() - started:.0f} s", flush=True)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE billing_usagerollup")


def measure(name: str, runs: int, call: Callable[[int], int]) -> float:
    call(0)  # warm
    timings = []
    for run in range(runs):
        started = time.perf_counter()
        status = call(run)
        timings.append((time.perf_counter() - started) * 1000)
        if status != 200:
            sys.exit(f"{name}: HTTP {status}")
    timings.sort()
    p95 = timings[max(0, int(len(timings) * 0.95) - 1)]
    print(f"{name:<58} p50 {statistics.median(timings):7.1f} ms   p95 {p95:7.1f} ms")
    return p95


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--rebuild", action="store_true", help="drop and regenerate the data set")
    parser.add_argument("--pages-only", action="store_true", help="time the dashboard pages only")
    args = parser.parse_args()

    setup_django(DATABASE, fresh=args.rebuild)
    from django.utils import timezone
    from rest_framework.test import APIClient

    from billing.models import UsageEvent, UsageRollup
    from billing.selectors import sum_spend
    from governance.actors import Actor
    from governance.models import Customer
    from governance.services.api_tokens import create_api_token

    end = timezone.now().replace(minute=0, second=0, microsecond=0)
    if not UsageEvent.objects.exists():
        populate(args.events, end)
    else:
        end = UsageEvent.objects.order_by("-occurred_at").values_list("occurred_at", flat=True)[0].replace(
            minute=0, second=0, microsecond=0
        ) + timedelta(hours=1)
    events = UsageEvent.objects.count()
    rollups = UsageRollup.objects.count()
    print(f"\n{events:,} events, {rollups:,} rollup rows, {Customer.objects.count():,} customers\n")

    token = create_api_token(actor=Actor.command("bench"), name="bench", role="finance", now=timezone.now()).secret
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    rng = random.Random(3)
    customers = list(Customer.objects.values_list("external_id", flat=True))
    iso = lambda moment: moment.astimezone(UTC).isoformat()  # noqa: E731

    def usage(**params: str) -> Callable[[int], int]:
        def call(_: int) -> int:
            query = dict(params)
            if query.get("customer") == "?":
                query["customer"] = rng.choice(customers)
            return client.get("/api/v1/usage/", query).status_code

        return call

    month = {"start": iso(end - timedelta(days=30)), "end": iso(end)}
    quarter = {"start": iso(end - timedelta(days=DAYS)), "end": iso(end)}
    week = {"start": iso(end - timedelta(days=7)), "end": iso(end)}
    p95s: list[float] = (
        []
        if args.pages_only
        else [
            measure("one customer, 30 days by day", args.runs, usage(**month, granularity="day", customer="?")),
            measure(
                "one customer, 30 days by day and model",
                args.runs,
                usage(**month, granularity="day", customer="?", group_by="model"),
            ),
            measure(
                "all customers, 30 days, total per customer",
                args.runs,
                usage(**month, granularity="total", group_by="customer", page_size="1000"),
            ),
            measure("all customers, 90 days by month", args.runs, usage(**quarter, granularity="month")),
            measure(
                "all customers, 90 days, total per provider and model",
                args.runs,
                usage(**quarter, granularity="total", group_by="provider,model"),
            ),
            measure("all customers, 7 days by hour", args.runs, usage(**week, granularity="hour", page_size="1000")),
        ]
    )
    start = end - timedelta(days=30)
    picks = [Customer.objects.get(external_id=rng.choice(customers)) for _ in range(args.runs + 1)]
    if not args.pages_only:
        p95s.append(
            measure(
                "customer spend query (sum_spend, 30 days)",
                args.runs,
                lambda run: (sum_spend(customer=picks[run], start=start, end=end), 200)[1],
            )
        )
        print(f"\nworst p95 {max(p95s):.1f} ms (target: under 150 ms)\n")

    # Dashboard pages, whole request through Django (session, templates, plotly figures),
    # with static files collected as production serves them (hashed manifest).
    from django.core.management import call_command
    from django.test import Client

    call_command("collectstatic", "--noinput", verbosity=0)
    from governance.models import VirtualKey
    from governance.services.users import create_user

    admin = create_user(
        actor=Actor.command("bench"), username=f"bench-{int(time.time())}", email="", password="x" * 16, role="admin"
    )
    pages = Client()
    pages.force_login(admin)
    span = f"start={(end - timedelta(days=30)).date()}&end={(end - timedelta(hours=1)).date()}"
    ids = list(Customer.objects.values_list("pk", flat=True))
    key_ids = list(VirtualKey.objects.values_list("pk", flat=True)[:500])

    def page(path: Callable[[], str]) -> Callable[[int], int]:
        return lambda _: pages.get(path()).status_code

    page_p95s = [
        measure("page: overview, 30 days", args.runs, page(lambda: f"/?{span}")),
        measure("page: customers, 30 days (1,000 rows)", args.runs, page(lambda: f"/customers/?{span}")),
        measure("page: a customer, 30 days by model", args.runs, page(lambda: f"/customers/{rng.choice(ids)}/?{span}")),
        measure(
            "page: a customer, 30 days by provider",
            args.runs,
            page(lambda: f"/customers/{rng.choice(ids)}/?{span}&by=provider"),
        ),
        measure("page: a key, 30 days", args.runs, page(lambda: f"/keys/{rng.choice(key_ids)}/?{span}")),
        measure("page: keys", args.runs, page(lambda: "/keys/")),
        measure("page: budgets", args.runs, page(lambda: "/budgets/")),
        measure("page: alerts", args.runs, page(lambda: "/alerts/")),
        measure("page: audit log", args.runs, page(lambda: "/audit/")),
    ]
    # Scoped users (#7): a viewer of one large customer and a lead of two teams; their
    # queries add the scope's filter to every rollup read.
    from governance.models import Team

    biggest = Customer.objects.order_by("pk")[0]  # traffic is skewed towards the first customers
    teams = list(Team.objects.order_by("pk")[:2])
    stamp = int(time.time())
    scoped = {
        "customer viewer": create_user(actor=Actor.command("bench"), username=f"cv-{stamp}",
                                       email=f"cv-{stamp}@bench.example", password="x" * 16, role="viewer",
                                       customers=[biggest]),
        "team lead": create_user(actor=Actor.command("bench"), username=f"tl-{stamp}",
                                 email=f"tl-{stamp}@bench.example", password="x" * 16, role="team_lead", teams=teams),
    }  # fmt: skip
    for label, user in scoped.items():
        pages.force_login(user)
        page_p95s += [
            measure(f"page: overview as a {label}", args.runs, page(lambda: f"/?{span}")),
            measure(f"page: customers as a {label}", args.runs, page(lambda: f"/customers/?{span}")),
            measure(f"page: a team as a {label}", args.runs, page(lambda: f"/teams/{teams[0].pk}/?{span}")),
        ]
        grant = user.role_grants.get()
        scoped_token = create_api_token(
            actor=Actor.command("bench"), name=f"{label} {stamp}", role=grant.role, now=timezone.now(), user=user,
            customers=list(grant.customers.all()), teams=list(grant.teams.all()),
        ).secret  # fmt: skip
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {scoped_token}")
        page_p95s.append(
            measure(f"usage API as a {label}, 30 days by day", args.runs, usage(**month, granularity="day"))
        )
    print(f"\nworst page p95 {max(page_p95s):.1f} ms (target: under 200 ms)")


if __name__ == "__main__":
    main()

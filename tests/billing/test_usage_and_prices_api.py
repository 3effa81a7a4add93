from __future__ import annotations

import json
from decimal import Decimal

import pytest
from django.db.models import Sum

from billing.models import RepriceJob, UsageEvent, UsageRollup, UsageSums
from billing.repricing import run_reprice
from governance.models import AuditEntry, BudgetPeriod
from ingest.models import IngestBatch
from ingest.services import process_batch
from tests.factories import make_budget, make_customer, make_team, native_event

pytestmark = pytest.mark.django_db


def ingest(gateway, events):
    response = gateway.post("/api/v1/ingest/events", json.dumps(events), content_type="application/json")
    assert response.status_code == 202, response.content
    process_batch(batch_id=response.json()["batch_id"])


@pytest.fixture
def traffic(gateway):
    make_customer(external_id="acme")
    make_customer(external_id="globex")
    ingest(
        gateway,
        [
            native_event(
                request_id="1", customer="acme", cost="0.10", latency_ms=100, timestamp="2026-05-01T10:15:00Z"
            ),
            native_event(
                request_id="2",
                customer="acme",
                cost="0.20",
                latency_ms=300,
                timestamp="2026-05-01T11:15:00Z",
                pipeline_stage="caption",
            ),
            native_event(
                request_id="3",
                customer="globex",
                cost="0.05",
                latency_ms=2000,
                status=500,
                timestamp="2026-05-02T09:00:00Z",
                model="gpt-4o",
            ),
            native_event(request_id="4", customer="acme", cost="1.00", timestamp="2026-06-01T00:00:00Z"),
        ],
    )


RANGE = {"start": "2026-05-01T00:00:00Z", "end": "2026-06-01T00:00:00Z"}


def test_usage_by_customer_per_day_from_rollups(admin_api, traffic):
    response = admin_api.get("/api/v1/usage/", RANGE | {"granularity": "day", "group_by": "customer"})

    assert response.status_code == 200
    rows = [(r["bucket"], r["customer"], r["requests"], r["errors"], r["cost"]) for r in response.json()["results"]]
    assert rows == [
        ("2026-05-01T00:00:00+00:00", "acme", 2, 0, "0.3"),
        ("2026-05-02T00:00:00+00:00", "globex", 1, 1, "0.05"),
    ]


def test_usage_totals_have_latency_percentiles_and_end_is_exclusive(admin_api, traffic):
    rows = admin_api.get("/api/v1/usage/", RANGE | {"granularity": "total"}).json()["results"]

    assert len(rows) == 1 and "bucket" not in rows[0]
    assert rows[0]["requests"] == 3 and rows[0]["cost"] == "0.35"
    assert rows[0]["latency_p50_ms"] is not None and rows[0]["latency_p99_ms"] >= rows[0]["latency_p50_ms"]


def test_usage_filters_and_groups_by_stage_and_model(admin_api, traffic):
    rows = admin_api.get(
        "/api/v1/usage/", RANGE | {"granularity": "total", "customer": "acme", "group_by": "pipeline_stage,model"}
    ).json()["results"]
    assert {(r["pipeline_stage"], r["model"], r["requests"]) for r in rows} == {
        (None, "gpt-4o-mini", 1),
        ("caption", "gpt-4o-mini", 1),
    }


def test_usage_days_follow_the_requested_timezone(admin_api, traffic):
    rows = admin_api.get(
        "/api/v1/usage/", RANGE | {"granularity": "day", "timezone": "America/Los_Angeles", "customer": "acme"}
    ).json()["results"]
    assert [r["bucket"] for r in rows] == ["2026-05-01T00:00:00-07:00"]


def test_usage_as_csv(admin_api, traffic):
    response = admin_api.get("/api/v1/usage/", RANGE | {"group_by": "customer", "format": "csv"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    lines = response.content.decode().splitlines()
    assert lines[0].startswith("bucket,customer,requests,errors")
    assert len(lines) == 3


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"group_by": "planet"}, "group_by"),
        ({"granularity": "week"}, "granularity"),
        ({"start": "2026-05-02T00:00:00Z", "end": "2026-05-01T00:00:00Z"}, "start"),
        ({"granularity": "hour", "start": "2025-01-01T00:00:00Z", "end": "2026-01-01T00:00:00Z"}, "granularity"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"start": "not a time"}, "start"),
    ],
)
def test_bad_usage_queries_are_400_naming_the_parameter(admin_api, params, field):
    response = admin_api.get("/api/v1/usage/", params)
    assert response.status_code == 400 and field in response.json()


@pytest.mark.parametrize(("role", "expected"), [(None, 401), ("viewer", 200), ("finance", 200), ("admin", 200)])
def test_usage_is_readable_by_every_role(client_for, role, expected):
    assert client_for(role).get("/api/v1/usage/").status_code == expected


def test_an_unpriced_event_is_priced_by_a_new_price_and_a_reprice(admin_api, gateway, client_for):
    customer = make_customer(external_id="acme")
    make_budget(scope_type="customer", scope_id=customer.pk)
    ingest(
        gateway,
        [
            native_event(
                request_id="u",
                customer="acme",
                provider="acme-gpu",
                model="llama-70b",
                input_tokens=1_000_000,
                output_tokens=500_000,
                timestamp="2026-05-03T12:00:00Z",
            )
        ],
    )
    assert UsageEvent.objects.get().cost is None
    assert UsageRollup.objects.get().unpriced_requests == 1

    denied = client_for("finance").post("/api/v1/prices/", {"provider": "acme-gpu", "model": "llama-*"}, format="json")
    assert denied.status_code == 403
    created = admin_api.post(
        "/api/v1/prices/",
        {
            "provider": "acme-gpu",
            "model": "llama-*",
            "effective_from": "2026-01-01T00:00:00Z",
            "input_per_million": "0.9",
            "output_per_million": "0.9",
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    job = admin_api.post(
        "/api/v1/prices/reprice/", {"start": "2026-05-01T00:00:00Z", "end": "2026-06-01T00:00:00Z"}, format="json"
    )
    assert job.status_code == 202 and job.json()["events_total"] == 1

    run_reprice(job_id=job.json()["id"])  # what the queued task runs

    assert UsageEvent.objects.get().cost == Decimal("1.35")
    rollup = UsageRollup.objects.get()
    assert (rollup.cost, rollup.unpriced_requests) == (Decimal("1.35"), 0)
    assert BudgetPeriod.objects.aggregate(spent=Sum("spent"))["spent"] == Decimal("1.35")
    progress = admin_api.get(f"/api/v1/prices/reprice/{job.json()['id']}/").json()
    assert (progress["state"], progress["events_changed"], progress["percent_done"]) == ("done", 1, 100.0)
    assert AuditEntry.objects.filter(action__in=["price.add", "price.reprice"]).count() == 2
    assert run_reprice(job_id=job.json()["id"]).events_changed == 1  # a second run changes nothing more


def test_a_price_change_mid_range_prices_each_event_by_its_own_time(admin_api, gateway):
    admin_api.post(
        "/api/v1/prices/",
        {
            "provider": "lab",
            "model": "m1",
            "effective_from": "2026-01-01T00:00:00Z",
            "input_per_million": "1",
            "output_per_million": "0",
        },
        format="json",
    )
    admin_api.post(
        "/api/v1/prices/",
        {
            "provider": "lab",
            "model": "m1",
            "effective_from": "2026-05-15T00:00:00Z",
            "input_per_million": "2",
            "output_per_million": "0",
        },
        format="json",
    )
    ingest(
        gateway,
        [
            native_event(
                request_id="before",
                provider="lab",
                model="m1",
                input_tokens=1_000_000,
                output_tokens=0,
                timestamp="2026-05-14T23:59:59Z",
            ),
            native_event(
                request_id="after",
                provider="lab",
                model="m1",
                input_tokens=1_000_000,
                output_tokens=0,
                timestamp="2026-05-15T00:00:00Z",
            ),
        ],
    )
    assert dict(UsageEvent.objects.values_list("request_id", "cost")) == {"before": Decimal(1), "after": Decimal(2)}


def test_a_cache_hit_costs_nothing_and_records_its_saving(gateway):
    ingest(gateway, [native_event(request_id="hit", cache="exact", input_tokens=1_000_000, output_tokens=0)])
    event = UsageEvent.objects.get()
    assert (event.cost, event.cache_savings) == (Decimal(0), Decimal("0.15"))
    assert UsageRollup.objects.get().cache_hits == 1


def test_rebuild_rollups_recomputes_them_from_events(gateway, traffic):
    from django.core.management import call_command

    def rollups():
        rows = UsageRollup.objects.order_by("bucket", "customer_id", "model", "pipeline_stage").values()
        return [{name: value for name, value in row.items() if name != "id"} for row in rows]

    expected = rollups()  # as ingest wrote them, latency histograms included
    UsageRollup.objects.update(requests=999, cost=Decimal(999), latency_bucket_03=7)

    call_command("rebuild_rollups", "--start", "2026-05-01T00:00:00Z", "--end", "2026-06-02T00:00:00Z")

    assert rollups() == expected


def test_budget_periods_are_charged_once_per_new_event(gateway):
    customer = make_customer(external_id="acme")
    make_budget(scope_type="customer", scope_id=customer.pk, period="monthly", timezone="Europe/Paris")
    make_budget(scope_type="organization", scope_id=None, period="daily")
    events = [
        native_event(request_id=f"b{n}", customer="acme", cost="0.25", timestamp="2026-05-31T22:30:00Z")
        for n in range(4)
    ]
    ingest(gateway, events)
    ingest(gateway, events)  # resent: no double charge

    periods = {
        (p.budget.scope_type, p.start.isoformat()): p.spent for p in BudgetPeriod.objects.select_related("budget")
    }
    # 22:30 UTC on 31 May is 00:30 on 1 June in Paris: the June period.
    assert periods == {
        ("customer", "2026-05-31T22:00:00+00:00"): Decimal("1"),
        ("organization", "2026-05-31T00:00:00+00:00"): Decimal("1"),
    }


def test_metrics_report_ingest_counts_to_admins_only(admin_api, client_for, gateway, anon, settings):
    ingest(gateway, [native_event(request_id="m1"), native_event(request_id="m1")])
    IngestBatch.objects.update(state="processed")

    assert anon.get("/metrics").status_code == 401
    assert client_for("viewer").get("/metrics").status_code == 401
    text = admin_api.get("/metrics").content.decode()
    assert 'bursar_ingest_events_accepted_total{format="native",node="gw-eu-1"} 2.0' in text
    assert 'bursar_ingest_events_duplicates_total{format="native",node="gw-eu-1"} 1.0' in text
    assert "bursar_ingest_batches_pending 0.0" in text
    settings.METRICS_TOKEN = "scrape-secret"
    anon.credentials(HTTP_AUTHORIZATION="Bearer scrape-secret")
    assert anon.get("/metrics").status_code == 200


def test_purging_old_batches_keeps_the_counters(admin_api, gateway):
    from datetime import timedelta

    from django.utils import timezone

    from ingest.services import purge_processed_batches

    ingest(gateway, [native_event(request_id="p1")])
    assert purge_processed_batches(now=timezone.now() + timedelta(days=8)) == 1
    assert not IngestBatch.objects.exists()
    assert (
        'bursar_ingest_events_inserted_total{format="native",node="gw-eu-1"} 1.0'
        in admin_api.get("/metrics").content.decode()
    )
    assert RepriceJob.objects.count() == 0


@pytest.mark.parametrize(
    "params",
    [
        {"granularity": "total", "group_by": "customer"},
        {"granularity": "day", "group_by": "provider,model"},
        {"granularity": "month"},
        {"granularity": "hour"},
        {"granularity": "hour", "group_by": "model", "timezone": "Asia/Kolkata"},
        {"granularity": "day", "customer": "acme", "group_by": "model"},
        {"granularity": "total", "customer": "acme,globex", "group_by": "customer,model"},
        {"granularity": "day", "team": "red", "group_by": "model"},
        {"granularity": "total", "group_by": "team,provider,model"},
    ],
)
def test_rollup_tiers_give_the_same_answers_as_the_hourly_rows(admin_api, gateway, monkeypatch, params):
    from billing import selectors
    from billing.tiers import TIERS

    make_customer(external_id="acme")
    make_customer(external_id="globex")
    make_team(slug="red")
    make_team(slug="blue")
    events = [
        native_event(
            request_id=f"t{n}",
            customer=("acme", "globex")[n % 2],
            team=("red", "blue", "")[n % 3],
            cost=str(n / 100),
            latency_ms=40 * n,
            model=("gpt-4o-mini", "gpt-4.1")[n % 3 == 0],
            timestamp=f"2026-05-{1 + n % 5:02d}T{n % 24:02d}:30:00Z",
        )
        for n in range(60)
    ]
    ingest(gateway, events)
    for tier in TIERS:
        assert tier.model._default_manager.exists(), tier.model.__name__
    # Ragged edges around whole days, so daily tiers and hourly rows both serve a part.
    window = {"start": "2026-04-30T18:00:00Z", "end": "2026-05-05T06:00:00Z", "page_size": 1000}

    tiered = admin_api.get("/api/v1/usage/", window | params).json()["results"]
    monkeypatch.setattr(selectors, "TIERS", ())  # the same question from the full hourly rows only
    hourly = admin_api.get("/api/v1/usage/", window | params).json()["results"]

    assert tiered and tiered == hourly


def test_repricing_and_rebuilding_keep_every_tier_in_step(admin_api, gateway):
    from django.core.management import call_command

    from billing.tiers import TIERS

    make_customer(external_id="acme")
    ingest(
        gateway,
        [
            native_event(
                request_id="r",
                customer="acme",
                provider="lab",
                model="m2",
                input_tokens=1_000_000,
                output_tokens=0,
                timestamp="2026-05-03T12:00:00Z",
            )
        ],
    )
    admin_api.post(
        "/api/v1/prices/",
        {
            "provider": "lab",
            "model": "m2",
            "effective_from": "2026-01-01T00:00:00Z",
            "input_per_million": "3",
            "output_per_million": "0",
        },
        format="json",
    )
    job = admin_api.post(
        "/api/v1/prices/reprice/", {"start": "2026-05-01T00:00:00Z", "end": "2026-06-01T00:00:00Z"}, format="json"
    ).json()
    run_reprice(job_id=job["id"])

    tables: list[type[UsageSums]] = [UsageRollup, *(tier.model for tier in TIERS)]
    for model in tables:
        row = model._default_manager.get()
        assert (row.cost, row.unpriced_requests) == (Decimal(3), 0), model.__name__

    for tier in TIERS:
        tier.model._default_manager.update(cost=Decimal(99))
    call_command("rebuild_rollups", "--start", "2026-05-03T00:00:00Z", "--end", "2026-05-04T00:00:00Z")
    assert all(tier.model._default_manager.get().cost == Decimal(3) for tier in TIERS)


def test_repricing_twice_moves_nothing_the_second_time_even_with_long_decimals(admin_api, gateway):
    ingest(
        gateway,
        [
            native_event(
                request_id=f"g{n}",
                provider="modal",
                model="a100",
                input_tokens=0,
                output_tokens=0,
                gpu_seconds="3.333333",
                timestamp="2026-05-03T12:00:00Z",
            )
            for n in range(4)
        ],
    )
    admin_api.post(
        "/api/v1/prices/",
        {
            "provider": "modal",
            "model": "a100",
            "effective_from": "2026-01-01T00:00:00Z",
            "per_gpu_second": "0.0004166667",
        },
        format="json",
    )
    window = {"start": "2026-05-01T00:00:00Z", "end": "2026-06-01T00:00:00Z"}
    first = run_reprice(job_id=admin_api.post("/api/v1/prices/reprice/", window, format="json").json()["id"])
    rollup_cost = UsageRollup.objects.get().cost
    second = run_reprice(job_id=admin_api.post("/api/v1/prices/reprice/", window, format="json").json()["id"])

    assert (first.events_changed, second.events_changed) == (4, 0)
    assert second.cost_delta == Decimal(0)
    stored = [cost or Decimal(0) for cost in UsageEvent.objects.values_list("cost", flat=True)]
    assert UsageRollup.objects.get().cost == rollup_cost == sum(stored, Decimal(0))

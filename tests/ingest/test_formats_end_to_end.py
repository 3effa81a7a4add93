"""Real client bodies (shared/fixtures) through the endpoint and the batch processor."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db.models import Count, Sum

from billing.models import UsageEvent, UsageRollup
from governance.models import Customer
from ingest.models import IngestBatch
from ingest.services import process_batch

pytestmark = pytest.mark.django_db


def post_and_process(gateway, path, body, content_type):
    response = gateway.generic("POST", path, body, content_type=content_type)
    assert response.status_code == 202, response.content
    batch_id = response.json()["batch_id"]
    outcome = process_batch(batch_id=batch_id)
    return response.json(), outcome


def spend_by_customer():
    rows = (
        UsageEvent.objects.values("customer_id")
        .annotate(requests=Count("id"), cost=Sum("cost"))
        .order_by("customer_id")
    )
    names = dict(Customer.objects.values_list("pk", "external_id"))
    return {names.get(row["customer_id"]): (row["requests"], row["cost"]) for row in rows}


def test_litellm_batch_is_stored_priced_and_attributed_without_prompt_text(gateway, fixture_bytes):
    body = fixture_bytes("litellm/chat_success_batch.json")

    acceptance, outcome = post_and_process(gateway, "/api/v1/ingest/litellm", body, "application/json")

    assert acceptance["accepted"] == 4 and acceptance["rejected"] == []
    assert outcome.inserted == 4
    assert spend_by_customer() == {
        "acme_corp": (3, Decimal("0.0000405")),
        "globex": (1, Decimal("0.00011")),
    }
    assert set(UsageEvent.objects.values_list("pipeline_stage", flat=True)) == {"caption", ""}
    stored = str(list(UsageEvent.objects.values())) + str(IngestBatch.objects.get().events)
    for text in ("sneaker", "ceramic bottle", "messages", "Say hello"):
        assert text not in stored


def test_a_resent_batch_counts_once(gateway, fixture_bytes):
    body = fixture_bytes("litellm/chat_success_batch.json")
    post_and_process(gateway, "/api/v1/ingest/litellm", body, "application/json")
    rollups_before = list(UsageRollup.objects.values("requests", "cost"))

    acceptance, outcome = post_and_process(gateway, "/api/v1/ingest/litellm", body, "application/json")

    assert acceptance["accepted"] == 4
    assert (outcome.inserted, outcome.duplicates) == (0, 4)
    assert UsageEvent.objects.count() == 4
    assert list(UsageRollup.objects.values("requests", "cost")) == rollups_before


def test_litellm_fallback_pair_and_failures(gateway, fixture_bytes):
    post_and_process(
        gateway, "/api/v1/ingest/litellm", fixture_bytes("litellm/fallback_and_failure.json"), "application/json"
    )

    events = {(e.model, e.status): e for e in UsageEvent.objects.all()}
    assert set(events) == {("gpt-4o", 429), ("claude-haiku-4-5", 200), ("gpt-4o", 500)}
    assert events[("claude-haiku-4-5", 200)].fallback is True
    assert events[("gpt-4o", 429)].cost == 0 and events[("gpt-4o", 500)].cost == 0
    rollup = UsageRollup.objects.aggregate(errors=Sum("errors"), fallbacks=Sum("fallbacks"), requests=Sum("requests"))
    assert rollup == {"errors": 2, "fallbacks": 1, "requests": 3}


def test_litellm_stream_keeps_time_to_first_token_and_exact_cost(gateway, fixture_bytes):
    post_and_process(gateway, "/api/v1/ingest/litellm", fixture_bytes("litellm/chat_stream.json"), "application/json")

    event = UsageEvent.objects.get()
    assert event.ttft_ms == 280 and event.latency_ms == 915
    # The float 1.0350000000000001e-05 read as the decimal of its repr, kept at the
    # column's 10 places (style.md): no binary-float error reaches the money.
    assert event.cost == Decimal("0.00001035")


def test_litellm_embedding_is_an_embedding_and_unnamed_customer_stays_unattributed(gateway, fixture_bytes):
    post_and_process(
        gateway, "/api/v1/ingest/litellm", fixture_bytes("litellm/chat_and_embedding.json"), "application/json"
    )

    embedding = UsageEvent.objects.get(operation="embedding")
    assert embedding.customer_id is None and embedding.output_tokens == 0


@pytest.mark.parametrize(
    ("name", "content_type"),
    [("otlp/gateway_spans.pb", "application/x-protobuf"), ("otlp/gateway_spans.json", "application/json")],
)
def test_otlp_spans_give_the_documented_totals(gateway, fixture_bytes, name, content_type):
    acceptance, outcome = post_and_process(gateway, "/api/v1/ingest/otlp/v1/traces", fixture_bytes(name), content_type)

    assert acceptance["accepted"] == 5 and outcome.inserted == 5
    assert spend_by_customer() == {
        "acme_corp": (3, Decimal("0.003278")),
        "globex": (2, Decimal("0.0001512")),
    }
    globex = Customer.objects.get(external_id="globex")
    errors = UsageRollup.objects.filter(customer_id=globex.pk).aggregate(errors=Sum("errors"))["errors"]
    assert errors == 1
    cached = UsageEvent.objects.get(customer_id=globex.pk, status=200)
    assert (cached.input_tokens, cached.cached_input_tokens) == (1200, 1024)


def test_protobuf_and_json_encodings_of_one_export_are_the_same_events(gateway, fixture_bytes):
    post_and_process(
        gateway, "/api/v1/ingest/otlp/v1/traces", fixture_bytes("otlp/gateway_spans.pb"), "application/x-protobuf"
    )
    _acceptance, outcome = post_and_process(
        gateway, "/api/v1/ingest/otlp/v1/traces", fixture_bytes("otlp/gateway_spans.json"), "application/json"
    )
    assert (outcome.inserted, outcome.duplicates) == (0, 5)

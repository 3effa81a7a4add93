"""Native ingest: every way a body can be odd, and what is kept."""

from __future__ import annotations

import gzip
import json
from decimal import Decimal

import pytest
from django.db.models import Sum

from billing.models import UsageEvent, UsageRollup
from governance.models import GatewayNode
from ingest.models import IngestBatch
from ingest.services import process_batch
from tests.factories import make_customer, make_key, make_team, make_token, native_event

pytestmark = pytest.mark.django_db


def post(gateway, events, *, content_type="application/json", encoding=None, raw=None):
    body = raw if raw is not None else json.dumps(events).encode()
    extra = {"HTTP_CONTENT_ENCODING": encoding} if encoding else {}
    return gateway.generic("POST", "/api/v1/ingest/events", body, content_type=content_type, **extra)


def process_all():
    for batch_id in IngestBatch.objects.filter(state="pending").values_list("id", flat=True):
        process_batch(batch_id=batch_id)


def test_a_bad_event_is_rejected_alone_and_the_valid_ones_are_kept(gateway):
    events = [
        native_event(request_id="a"),
        native_event(request_id="b", timestamp="yesterday"),
        native_event(request_id="c"),
    ]

    response = post(gateway, events)

    assert response.status_code == 202
    body = response.json()
    assert body["accepted"] == 2
    assert [item["index"] for item in body["rejected"]] == [1]
    assert list(body["rejected"][0]["errors"]) == ["timestamp"]
    process_all()
    assert set(UsageEvent.objects.values_list("request_id", flat=True)) == {"a", "c"}


def test_ndjson_with_a_bad_line_keeps_the_others(gateway):
    lines = [json.dumps(native_event(request_id="n1")), "{not json", json.dumps(native_event(request_id="n2"))]

    response = post(gateway, None, raw="\n".join(lines).encode(), content_type="application/x-ndjson")

    assert response.status_code == 202
    assert response.json()["accepted"] == 2
    assert response.json()["rejected"][0]["index"] == 1


def test_gzip_bodies_are_accepted(gateway):
    raw = gzip.compress(json.dumps([native_event(request_id="gz")]).encode())
    response = post(gateway, None, raw=raw, encoding="gzip")
    assert response.status_code == 202 and response.json()["accepted"] == 1


def test_a_gzip_bomb_is_a_413_and_stores_nothing(gateway, settings):
    settings.INGEST_MAX_DECOMPRESSED_BYTES = 100_000
    raw = gzip.compress(b"[" + b" " * 5_000_000 + b"]")
    response = post(gateway, None, raw=raw, encoding="gzip")
    assert response.status_code == 413
    assert not IngestBatch.objects.exists()


def test_an_oversized_body_is_a_413(gateway, settings):
    settings.INGEST_MAX_BODY_BYTES = 2048
    response = post(gateway, [native_event(request_id=f"r{n}") for n in range(50)])
    assert response.status_code == 413
    assert not IngestBatch.objects.exists()


@pytest.mark.parametrize("raw", [b"[{", b"\x00\x01garbage", b'"just a string"'])
def test_an_unparseable_body_is_a_400_and_stores_nothing(gateway, raw):
    response = post(gateway, None, raw=raw)
    assert response.status_code == 400
    assert not IngestBatch.objects.exists()


def test_a_body_with_only_bad_events_is_a_400_listing_them(gateway):
    response = post(gateway, [{"request_id": "x"}])
    assert response.status_code == 400
    assert response.json()["rejected"][0]["errors"]["timestamp"] == ["Field required"]


def test_wrong_media_type_and_encoding_are_415(gateway):
    assert post(gateway, [native_event()], content_type="text/xml").status_code == 415
    assert post(gateway, [native_event()], encoding="br").status_code == 415


def test_ingest_needs_a_node_token(anon):
    assert anon.post("/api/v1/ingest/events", [native_event()], format="json").status_code == 401
    anon.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token('admin').secret}")
    assert anon.post("/api/v1/ingest/events", [native_event()], format="json").status_code == 401
    assert not IngestBatch.objects.exists()


def test_a_duplicate_inside_one_batch_counts_once(gateway):
    post(gateway, [native_event(request_id="dup", cost="0.5"), native_event(request_id="dup", cost="0.5")])
    process_all()
    assert UsageEvent.objects.count() == 1
    assert UsageRollup.objects.aggregate(cost=Sum("cost"))["cost"] == Decimal("0.5")


def test_the_same_event_in_two_batches_counts_once(gateway):
    post(gateway, [native_event(request_id="once", cost="1.25")])
    post(gateway, [native_event(request_id="once", cost="1.25"), native_event(request_id="twice", cost="1")])
    process_all()
    assert UsageRollup.objects.aggregate(cost=Sum("cost"), requests=Sum("requests")) == {
        "cost": Decimal("2.25"),
        "requests": 2,
    }


def test_a_late_event_lands_in_its_own_hour(gateway):
    post(gateway, [native_event(request_id="now", timestamp="2026-05-27T14:10:00Z")])
    post(gateway, [native_event(request_id="late", timestamp="2026-05-20T03:59:59Z")])
    process_all()
    buckets = sorted(b.isoformat() for b in UsageRollup.objects.values_list("bucket", flat=True))
    assert buckets == ["2026-05-20T03:00:00+00:00", "2026-05-27T14:00:00+00:00"]


def test_events_are_attributed_through_the_key_they_name(gateway):
    customer = make_customer(external_id="acme")
    team = make_team(customer=customer)
    issued = make_key(team=team)

    post(
        gateway,
        [
            native_event(request_id="k1", virtual_key=issued.key.public_id),
            native_event(request_id="k2", virtual_key=issued.key.secret_prefix),
        ],
    )
    process_all()

    assert set(UsageEvent.objects.values_list("customer_id", "team_id", "virtual_key_id")) == {
        (customer.pk, team.pk, issued.key.pk)
    }


def test_an_unknown_customer_is_created_and_an_unknown_key_is_kept_by_name(gateway):
    post(gateway, [native_event(request_id="u1", customer="brand_new", virtual_key="vk_unknown")])
    process_all()
    event = UsageEvent.objects.get()
    assert event.customer_id is not None and event.virtual_key_id is None
    assert event.virtual_key_ref == "vk_unknown"


def test_unknown_customers_stay_unattributed_when_auto_creation_is_off(gateway, settings):
    settings.INGEST_AUTO_CREATE_CUSTOMERS = False
    post(gateway, [native_event(request_id="u1", customer="nobody_yet")])
    process_all()
    event = UsageEvent.objects.get()
    assert (event.customer_id, event.customer_ref) == (None, "nobody_yet")


def test_unknown_fields_and_prompt_text_are_ignored(gateway):
    post(gateway, [native_event(request_id="p", messages=[{"content": "top secret prompt"}], response="answer text")])
    process_all()
    stored = str(list(UsageEvent.objects.values())) + str(IngestBatch.objects.values_list("events", flat=True)[0])
    assert "top secret prompt" not in stored and "answer text" not in stored


def test_accepting_marks_the_node_as_seen(gateway, node):
    post(gateway, [native_event()])
    assert GatewayNode.objects.get(pk=node.node.pk).last_seen_at is not None


def test_the_batch_reports_its_progress_only_to_its_node(gateway, anon, node):
    batch_id = post(gateway, [native_event(request_id="s1"), native_event(request_id="s1")]).json()["batch_id"]
    assert gateway.get(f"/api/v1/ingest/batches/{batch_id}").json()["state"] == "pending"

    process_all()

    status = gateway.get(f"/api/v1/ingest/batches/{batch_id}").json()
    assert (status["state"], status["accepted"], status["inserted"], status["duplicates"]) == ("processed", 2, 1, 1)
    from governance.actors import Actor
    from governance.services.nodes import register_gateway_node

    other = register_gateway_node(actor=Actor.system("tests"), name="gw-other")
    anon.credentials(HTTP_AUTHORIZATION=f"Bearer {other.ingest_token}")
    assert anon.get(f"/api/v1/ingest/batches/{batch_id}").status_code == 404


def test_processing_twice_is_a_no_op(gateway):
    batch_id = post(gateway, [native_event(request_id="x", cost="3")]).json()["batch_id"]
    first = process_batch(batch_id=batch_id)
    second = process_batch(batch_id=batch_id)
    assert (first.inserted, second.state, second.inserted) == (1, "processed", 0)
    assert UsageRollup.objects.aggregate(cost=Sum("cost"))["cost"] == Decimal("3")


def test_processing_is_queued_only_after_commit(gateway, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        response = post(gateway, [native_event()])
    assert response.status_code == 202
    assert len(callbacks) == 1


def test_overload_answers_503_with_retry_after(gateway, settings):
    from ingest.api import views

    settings.INGEST_MAX_PENDING_BATCHES = 1
    views._pending_cache.update(at=0.0, count=0.0)  # a count cached by an earlier test (< 1 s ago) must not leak in
    assert post(gateway, [native_event(request_id="first")]).status_code == 202
    views._pending_cache["at"] = 0.0
    response = post(gateway, [native_event(request_id="second")])
    assert response.status_code == 503
    assert response.headers.get("Retry-After")


def test_a_worker_stores_other_pending_batches_in_the_same_transaction(gateway, settings):
    settings.INGEST_BATCHES_PER_TRANSACTION = 5
    first = post(gateway, [native_event(request_id="g1", cost="1"), native_event(request_id="shared", cost="2")])
    second = post(gateway, [native_event(request_id="shared", cost="2"), native_event(request_id="g2", cost="4")])

    outcome = process_batch(batch_id=first.json()["batch_id"])
    again = process_batch(batch_id=second.json()["batch_id"])

    assert (outcome.state, outcome.processed_with, again.state, again.inserted) == ("processed", 1, "processed", 0)
    counts = {str(b.id): (b.inserted, b.duplicates) for b in IngestBatch.objects.all()}
    assert counts == {first.json()["batch_id"]: (2, 0), second.json()["batch_id"]: (1, 1)}
    assert UsageRollup.objects.aggregate(cost=Sum("cost"))["cost"] == Decimal("7")


def test_cached_input_tokens_are_priced_at_the_cached_rate(gateway):
    # gpt-4o-mini: 0.15 input, 0.075 cached input, 0.60 output per million (shipped catalog).
    post(gateway, [native_event(request_id="c", input_tokens=1000, cached_input_tokens=800, output_tokens=100)])
    process_all()
    assert UsageEvent.objects.get().cost == Decimal("0.00015")  # (200*0.15 + 800*0.075 + 100*0.6) / 1e6


def test_cache_tokens_cannot_exceed_input_tokens(gateway):
    response = post(gateway, [native_event(input_tokens=100, cached_input_tokens=80, cache_write_tokens=40)])
    assert response.status_code == 400
    assert "cached_input_tokens" in str(response.json()["rejected"][0]["errors"])


def test_the_one_pass_and_the_per_event_paths_store_the_same_events(gateway):
    clean = [
        native_event(request_id="same-1", cost="0.000042", tags={"request_id": "not a key"}, units={"renders": 2}),
        native_event(request_id="same-2", timestamp="2026-05-27T16:52:40.123+02:00"),
    ]
    post(gateway, clean)  # one pass (a clean JSON array)
    post(
        gateway,
        None,
        raw="\n".join(json.dumps({**e, "request_id": e["request_id"] + "-nd"}) for e in clean).encode(),
        content_type="application/x-ndjson",
    )  # item by item
    process_all()
    assert IngestBatch.objects.filter(accepted=2).count() == 2

    def fields(request_id):
        row = UsageEvent.objects.values().get(request_id=request_id)
        return {k: v for k, v in row.items() if k not in ("id", "request_id", "batch_id", "received_at")}

    assert fields("same-1") == fields("same-1-nd")
    assert fields("same-2") == fields("same-2-nd")
    assert fields("same-2")["occurred_at"].isoformat() == "2026-05-27T14:52:40.123000+00:00"

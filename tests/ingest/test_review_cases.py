"""Inputs found in review that once produced 500s, stalls or lost events."""

from __future__ import annotations

import gzip
import json

import pytest

from billing.models import UsageEvent
from ingest.models import IngestBatch
from ingest.services import process_batch
from ingest.tasks import process_batch_task
from tests.factories import native_event

pytestmark = pytest.mark.django_db


def post(gateway, path, body, content_type="application/json", **extra):
    return gateway.generic("POST", path, body, content_type=content_type, **extra)


def test_every_member_of_a_multi_member_gzip_body_is_read(gateway):
    body = gzip.compress(json.dumps(native_event(request_id="m1")).encode() + b"\n")
    body += gzip.compress(json.dumps(native_event(request_id="m2")).encode())  # as `cat a.gz b.gz` makes
    response = post(gateway, "/api/v1/ingest/events", body, "application/x-ndjson", HTTP_CONTENT_ENCODING="gzip")
    assert response.status_code == 202 and response.json()["accepted"] == 2


@pytest.mark.parametrize(
    "timestamp", ["0001-01-01T00:00:00Z", "0001-01-01T00:30:00+01:00", "1999-12-31T23:59:59Z", "9999-12-31T23:00:00Z"]
)
def test_timestamps_outside_2000_to_tomorrow_are_rejected_not_500(gateway, timestamp):
    response = post(gateway, "/api/v1/ingest/events", json.dumps([native_event(timestamp=timestamp)]))
    assert response.status_code == 400
    assert "timestamp" in response.json()["rejected"][0]["errors"]


@pytest.mark.parametrize("field", ["request_id", "model", "customer"])
def test_nul_characters_are_rejected(gateway, field):
    response = post(gateway, "/api/v1/ingest/events", json.dumps([native_event(**{field: "a\u0000b"})]))
    assert response.status_code == 400


def test_an_implausible_cost_is_rejected(gateway):
    response = post(gateway, "/api/v1/ingest/events", json.dumps([native_event(cost="999999999")]))
    assert response.status_code == 400 and "cost" in response.json()["rejected"][0]["errors"]


@pytest.mark.parametrize(
    "payload",
    [
        {"trace_id": {}, "litellm_call_id": "x", "status": "success", "model": "openai/gpt-4o"},
        {"litellm_call_id": "x", "status": "failure", "model": "a/b", "error_information": {"error_code": "²"}},
        {"litellm_call_id": "x", "status": "failure", "model": "a/b", "error_information": {"error_code": "9" * 5000}},
        {"litellm_call_id": "x", "status": "success", "model": "a/b", "startTime": 1e20},
        {"litellm_call_id": "x", "status": "success", "model": "a/b", "startTime": 1.0, "endTime": 1e308},
    ],
)
def test_odd_litellm_payloads_never_500(gateway, payload):
    assert post(gateway, "/api/v1/ingest/litellm", json.dumps([payload])).status_code in (202, 400)


@pytest.mark.parametrize(
    "body",
    [
        {"resourceSpans": [{"scopeSpans": None}]},
        {"resourceSpans": [{"scopeSpans": [{"spans": [{"attributes": [{"key": ["x"]}]}]}]}]},
        {
            "resourceSpans": [
                {"scopeSpans": [{"spans": [{"attributes": [{"key": "a", "value": {"arrayValue": [1]}}]}]}]}
            ]
        },
        {
            "resourceSpans": [
                {
                    "scopeSpans": [
                        {
                            "spans": [
                                {
                                    "startTimeUnixNano": "9" * 23,
                                    "attributes": [{"key": "gen_ai.request.model", "value": {"stringValue": "m"}}],
                                }
                            ]
                        }
                    ]
                }
            ]
        },
    ],
)
def test_odd_otlp_json_never_500(gateway, body):
    assert post(gateway, "/api/v1/ingest/otlp/v1/traces", json.dumps(body)).status_code in (202, 400)


@pytest.mark.parametrize(
    "params",
    [
        {"end": "0001-01-02T00:00:00Z"},
        {"start": "9999-12-31T01:00:00Z", "end": "9999-12-31T23:00:00Z", "granularity": "total"},
    ],
)
def test_usage_ranges_outside_2000_to_2100_are_400(admin_api, params):
    assert admin_api.get("/api/v1/usage/", params).status_code == 400


def test_negative_prices_are_refused(admin_api):
    response = admin_api.post(
        "/api/v1/prices/",
        {"provider": "lab", "model": "x", "effective_from": "2026-01-01T00:00:00Z", "input_per_million": "-5"},
        format="json",
    )
    assert response.status_code == 400 and "input_per_million" in response.json()


def test_a_batch_that_cannot_be_stored_is_set_aside_and_the_others_proceed(gateway, monkeypatch):
    good = post(gateway, "/api/v1/ingest/events", json.dumps([native_event(request_id="good")])).json()["batch_id"]
    bad = post(gateway, "/api/v1/ingest/events", json.dumps([native_event(request_id="poison")])).json()["batch_id"]

    from ingest import services

    real = services.record_usage  # type: ignore[attr-defined]

    def explode_on_poison(*, events):
        if any(event.request_id == "poison" for event in events):
            raise ValueError("cannot store this batch")
        return real(events=events)

    monkeypatch.setattr(services, "record_usage", explode_on_poison)

    result = process_batch_task.apply(args=(bad,)).get()  # grouped with "good", fails, retried alone, set aside
    assert result == {"state": "failed"}
    assert IngestBatch.objects.get(pk=bad).state == "failed"
    process_batch(batch_id=good)
    assert list(UsageEvent.objects.values_list("request_id", flat=True)) == ["good"]

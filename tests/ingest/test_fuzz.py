"""No body, however odd, makes an ingest endpoint answer 500 (hypothesis)."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.factories import native_event

pytestmark = pytest.mark.django_db

ENDPOINTS = [
    ("/api/v1/ingest/events", "application/json"),
    ("/api/v1/ingest/events", "application/x-ndjson"),
    ("/api/v1/ingest/litellm", "application/json"),
    ("/api/v1/ingest/otlp/v1/traces", "application/json"),
    ("/api/v1/ingest/otlp/v1/traces", "application/x-protobuf"),
]
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)
field_names = st.sampled_from(
    [
        *native_event(),
        "cost",
        "cached_input_tokens",
        "cache",
        "units",
        "tags",
        "virtual_key",
        "customer",
        "startTime",
        "metadata",
        "litellm_call_id",
        "resourceSpans",
        "scopeSpans",
        "spans",
        "attributes",
        "prompt_tokens",
        "response_cost",
    ]
)
event_like = st.dictionaries(field_names, json_values, max_size=12)


def assert_handled(response):
    assert response.status_code in (202, 400, 413, 415), (response.status_code, response.content[:500])


@FUZZ
@given(body=st.binary(max_size=2000), endpoint=st.sampled_from(ENDPOINTS))
def test_random_bytes_never_500(gateway, body, endpoint):
    path, content_type = endpoint
    assert_handled(gateway.generic("POST", path, body, content_type=content_type))


@FUZZ
@given(events=st.lists(event_like, max_size=5), endpoint=st.sampled_from(ENDPOINTS[:4]))
def test_event_shaped_json_never_500(gateway, events, endpoint):
    path, content_type = endpoint
    if content_type == "application/x-ndjson":
        body = "\n".join(json.dumps(event) for event in events).encode()
    elif path.endswith("traces"):
        body = json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": events}]}]}).encode()
    else:
        body = json.dumps(events).encode()
    assert_handled(gateway.generic("POST", path, body, content_type=content_type))


@FUZZ
@given(overrides=st.dictionaries(field_names, json_values, max_size=4))
def test_mutated_valid_events_are_accepted_or_rejected_field_by_field(gateway, overrides):
    response = gateway.generic(
        "POST", "/api/v1/ingest/events", json.dumps([native_event(**overrides)]), content_type="application/json"
    )
    assert_handled(response)
    if response.status_code == 400:
        assert response.json().get("rejected") or response.json().get("detail")

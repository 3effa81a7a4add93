"""Property: whatever events arrive, resent or duplicated, in any batches, each budget
period's ``spent`` is the sum of the distinct events' costs that fall in it."""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from governance.models import BudgetPeriod
from governance.periods import period_bounds
from ingest.models import IngestBatch
from ingest.services import process_batch
from tests.factories import make_budget, make_customer, native_event

pytestmark = pytest.mark.django_db

event_strategy = st.tuples(
    st.integers(min_value=0, max_value=11),  # request id: a small pool, so ids repeat
    st.decimals(min_value=Decimal("0"), max_value=Decimal("50"), places=4),  # its cost
    st.integers(min_value=0, max_value=24 * 40),  # hours ago: this period or the previous ones
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    batches=st.lists(st.lists(event_strategy, min_size=1, max_size=8), min_size=1, max_size=6),
    resend=st.lists(st.integers(min_value=0, max_value=5), max_size=4),
)
def test_spent_is_the_sum_of_distinct_events_in_the_period(gateway, batches, resend):
    run = uuid.uuid4().hex[:10]
    customer = make_customer(external_id=f"prop_{run}")
    budget = make_budget(
        scope_type="customer", scope_id=customer.pk, amount=Decimal("1000000"), period="weekly", soft_thresholds=[]
    )
    now = timezone.now().replace(microsecond=0)
    first_seen: dict[str, tuple[Decimal, datetime]] = {}
    bodies = []
    for batch in batches:
        body = []
        for number, cost, hours_ago in batch:
            request_id = f"{run}-{number}"
            at = (now - timedelta(hours=hours_ago)).astimezone(UTC)
            body.append(
                native_event(
                    request_id=request_id, customer=customer.external_id, cost=str(cost), timestamp=at.isoformat()
                )
            )
        bodies.append(body)
    for index in resend:  # whole batches sent again
        if index < len(bodies):
            bodies.append(bodies[index])
    for body in bodies:
        response = gateway.generic("POST", "/api/v1/ingest/events", json.dumps(body), content_type="application/json")
        assert response.status_code == 202, response.content
        # The first copy of a request id to be stored wins (later ones are duplicates).
        for event in body:
            first_seen.setdefault(
                event["request_id"], (Decimal(event["cost"]), datetime.fromisoformat(event["timestamp"]))
            )
        for batch_id in IngestBatch.objects.filter(state="pending").values_list("id", flat=True):
            process_batch(batch_id=batch_id, alone=True)

    expected: dict[datetime, Decimal] = defaultdict(Decimal)
    for cost, at in first_seen.values():
        if cost:
            expected[period_bounds("weekly", "UTC", at)[0]] += cost
    actual = {p.start: p.spent for p in BudgetPeriod.objects.filter(budget=budget) if p.spent}
    assert actual == dict(expected)

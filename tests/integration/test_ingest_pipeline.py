"""A gateway posts over real HTTP; a real worker on the real broker processes the batch."""

import time
from decimal import Decimal

import httpx
import pytest
from django.db.models import Sum

from billing.models import UsageRollup
from governance.actors import Actor
from governance.services.nodes import register_gateway_node
from ingest.models import IngestBatch

pytestmark = pytest.mark.integration


def test_litellm_callback_over_http_reaches_the_rollups_through_the_worker(
    celery_worker_queue, server_url, fixture_bytes
):
    node = register_gateway_node(actor=Actor.system("tests"), name="gw-http")

    response = httpx.post(
        f"{server_url}/api/v1/ingest/litellm",
        content=fixture_bytes("litellm/chat_success_batch.json"),
        headers={"Authorization": f"Bearer {node.ingest_token}", "Content-Type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 202, response.text
    batch_id = response.json()["batch_id"]

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not IngestBatch.objects.filter(pk=batch_id, state="processed").exists():
        time.sleep(0.2)
    status = httpx.get(
        f"{server_url}/api/v1/ingest/batches/{batch_id}", headers={"Authorization": f"Bearer {node.ingest_token}"}
    ).json()
    assert (status["state"], status["inserted"], status["duplicates"]) == ("processed", 4, 0)
    totals = UsageRollup.objects.aggregate(requests=Sum("requests"), cost=Sum("cost"))
    assert totals == {"requests": 4, "cost": Decimal("0.0001505")}  # 3 x 0.0000135 + 0.00011

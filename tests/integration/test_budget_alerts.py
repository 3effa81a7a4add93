"""The whole budget path on real parts: a gateway posts over HTTP, a real worker on the
real broker stores the events, the hard cap blocks the key, and the alert reaches a real
webhook receiver on loopback through the worker."""

import hashlib
import hmac
import json
import time
from decimal import Decimal

import httpx
import pytest
from django.utils import timezone

from governance.actors import Actor
from governance.models import AlertDelivery, VirtualKey
from governance.services.alerts import create_alert_channel
from governance.services.nodes import register_gateway_node
from tests.factories import make_budget, make_customer, make_key, native_event

pytestmark = pytest.mark.integration
SECRET = "whsec_integration_0123456789"


def test_a_crossing_event_blocks_the_key_and_the_worker_delivers_the_signed_alert(
    celery_worker_queue, server_url, receiver
):
    node = register_gateway_node(actor=Actor.system("tests"), name="gw-budget")
    customer = make_customer(external_id="capped")
    key = make_key(customer=customer).key
    make_budget(scope_type="customer", scope_id=customer.pk, amount=Decimal("10"), soft_thresholds=[])
    create_alert_channel(actor=Actor.system("tests"), kind="webhook", target=receiver.url, secret=SECRET)
    event = native_event(
        request_id="crossing",
        customer="capped",
        virtual_key=key.public_id,
        cost="10.5",
        timestamp=timezone.now().isoformat(),
    )

    response = httpx.post(
        f"{server_url}/api/v1/ingest/events",
        json=[event],
        headers={"Authorization": f"Bearer {node.ingest_token}"},
        timeout=30,
    )
    assert response.status_code == 202, response.text

    [request] = receiver.wait_for(1, timeout=60)
    assert VirtualKey.objects.get(pk=key.pk).status == "blocked"
    expected = "sha256=" + hmac.new(SECRET.encode(), request.body, hashlib.sha256).hexdigest()
    assert request.headers["X-Bursar-Signature"] == expected
    assert json.loads(request.body)["kind"] == "hard"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not AlertDelivery.objects.filter(state="delivered").exists():
        time.sleep(0.1)
    assert AlertDelivery.objects.get().attempts == 1


def test_a_crossing_event_reaches_every_gateway_node_through_the_worker(celery_worker_queue, server_url):
    from tests.fakes.generic import GenericGateway

    fakes = [GenericGateway() for _ in range(3)]
    try:
        for n, fake in enumerate(fakes):
            fake.ingest_token = register_gateway_node(
                actor=Actor.system("tests"), name=f"gw-push-{n}", base_url=fake.url
            ).ingest_token
        node = register_gateway_node(actor=Actor.system("tests"), name="gw-sender")
        customer = make_customer(external_id="fleet")
        key = make_key(customer=customer).key
        make_budget(scope_type="customer", scope_id=customer.pk, amount=Decimal("10"), soft_thresholds=[])
        event = native_event(
            request_id="fleet-crossing",
            customer="fleet",
            virtual_key=key.public_id,
            cost="12",
            timestamp=timezone.now().isoformat(),
        )

        response = httpx.post(
            f"{server_url}/api/v1/ingest/events",
            json=[event],
            headers={"Authorization": f"Bearer {node.ingest_token}"},
            timeout=30,
        )
        assert response.status_code == 202, response.text

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not all(fake.blocked(key.public_id) for fake in fakes):
            time.sleep(0.05)
        assert all(fake.blocked(key.public_id) for fake in fakes)
        assert {fake.version for fake in fakes} == {fakes[0].version}
    finally:
        for fake in fakes:
            fake.close()

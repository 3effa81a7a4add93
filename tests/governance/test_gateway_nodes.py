import pytest

from governance.models import AuditEntry, GatewayNode
from tests.factories import native_event

pytestmark = pytest.mark.django_db


def test_registering_a_node_shows_its_ingest_token_once_and_keeps_the_admin_token_encrypted(admin_api, anon):
    created = admin_api.post(
        "/api/v1/gateway-nodes/",
        {"name": "gw-eu-2", "kind": "litellm", "base_url": "http://127.0.0.1:4000", "admin_token": "sk-master-1234"},
        format="json",
    )
    assert created.status_code == 201
    body = created.json()
    assert body["ingest_token"].startswith("bsn_") and body["admin_token_set"] is True
    assert body["status"] == "never_seen"

    node = GatewayNode.objects.get(pk=body["id"])
    stored = str(GatewayNode.objects.filter(pk=node.pk).values().get()) + str(list(AuditEntry.objects.values()))
    assert "sk-master-1234" not in stored and body["ingest_token"] not in stored
    assert "ingest_token" not in admin_api.get(f"/api/v1/gateway-nodes/{node.pk}/").json()

    anon.credentials(HTTP_AUTHORIZATION=f"Bearer {body['ingest_token']}")
    sent = anon.post("/api/v1/ingest/events", [native_event()], format="json")
    assert sent.status_code == 202
    assert admin_api.get(f"/api/v1/gateway-nodes/{node.pk}/").json()["status"] == "online"


def test_changing_the_admin_token_is_audited_without_its_value(admin_api):
    node_id = admin_api.post("/api/v1/gateway-nodes/", {"name": "gw-x"}, format="json").json()["id"]

    admin_api.patch(f"/api/v1/gateway-nodes/{node_id}/", {"admin_token": "new-secret-value"}, format="json")

    entry = AuditEntry.objects.get(action="gateway_node.update")
    assert entry.after is not None
    assert entry.after["admin_token_encrypted"] == "(new value)"
    assert "new-secret-value" not in str(entry.after)


def test_a_deleted_node_can_no_longer_send(admin_api, anon):
    body = admin_api.post("/api/v1/gateway-nodes/", {"name": "gw-gone"}, format="json").json()
    admin_api.delete(f"/api/v1/gateway-nodes/{body['id']}/")
    anon.credentials(HTTP_AUTHORIZATION=f"Bearer {body['ingest_token']}")
    assert anon.post("/api/v1/ingest/events", [native_event()], format="json").status_code == 401


def test_node_names_are_unique_and_plain(admin_api):
    admin_api.post("/api/v1/gateway-nodes/", {"name": "gw-1"}, format="json")
    assert admin_api.post("/api/v1/gateway-nodes/", {"name": "gw-1"}, format="json").status_code == 409
    assert admin_api.post("/api/v1/gateway-nodes/", {"name": "gw 1/../x"}, format="json").status_code == 400
    assert admin_api.post("/api/v1/gateway-nodes/", {"name": "gw-2", "kind": "nginx"}, format="json").status_code == 400

from decimal import Decimal

import pytest
from django.apps import apps
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from governance.models import AlertDelivery, AuditEntry, Customer, RoleGrant
from governance.services.alerts import attempt_delivery, create_alert_channel
from governance.services.config import push_config
from governance.services.nodes import register_gateway_node
from governance.services.spend import SpendCharge, charge_spend
from governance.services.users import invite
from tests.factories import ACTOR, make_budget, make_customer, make_key, make_team, make_token, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client() -> Client:
    client = Client()
    client.force_login(make_user("admin"))
    return client


def test_every_governance_model_is_in_the_admin_and_no_secret_is_shown(admin_client):
    customer = make_customer()
    key = make_key(team=make_team(customer=customer))
    token = make_token("admin")
    node = register_gateway_node(
        actor=ACTOR, name="gw-1", admin_token="bifrost-admin-secret", base_url="http://127.0.0.1:9"
    )
    hook = create_alert_channel(actor=ACTOR, kind="webhook", target="http://127.0.0.1:9/hook", secret="s" * 20)
    slack = create_alert_channel(actor=ACTOR, kind="slack", target="https://hooks.slack.com/services/T1/B2/slacksecret")
    make_budget(scope_type="customer", scope_id=customer.pk, amount=Decimal("1"))
    invited = invite(actor=ACTOR, email="new@example.com", role="viewer", now=timezone.now())
    charge_spend(charges=[SpendCharge(timezone.now(), Decimal("1.5"), customer.pk, None, None)])
    push_config()  # port 9: refused, and recorded
    attempt_delivery(delivery_id=AlertDelivery.objects.order_by("pk")[0].pk, now=timezone.now())  # port 9: refused
    secrets = (key.secret, key.key.secret_sha256, token.secret, token.token.token_sha256, node.ingest_token,
               node.node.ingest_token_sha256, "bifrost-admin-secret", node.node.admin_token_encrypted,
               node.node.ingest_token_encrypted, key.key.secret_encrypted,
               "s" * 20, hook.channel.secret_encrypted, invited.secret, invited.invitation.token_sha256,
               "slacksecret", slack.channel.secret_encrypted)  # fmt: skip

    for model in apps.get_app_config("governance").get_models():
        meta = model._meta
        changelist = admin_client.get(reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist"))
        assert changelist.status_code == 200, meta.model_name
        obj = model._default_manager.first()
        assert obj is not None, meta.model_name
        detail = admin_client.get(reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[obj.pk]))
        assert detail.status_code == 200, meta.model_name
        for page in (changelist, detail):
            html = page.content.decode()
            for secret in secrets:
                assert secret not in html, (meta.model_name, secret[:8])


@pytest.mark.parametrize("app_label", ["billing", "ingest"])
def test_billing_and_ingest_models_are_listed_in_the_admin(admin_client, app_label):
    for model in apps.get_app_config(app_label).get_models():
        url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        assert admin_client.get(url).status_code == 200, model._meta.model_name


def test_the_admin_cannot_write_governance_rows_behind_the_services(admin_client):
    customer = make_customer(name="Kept")
    before = AuditEntry.objects.count()

    add = admin_client.post(reverse("admin:governance_customer_add"), {"external_id": "x", "name": "x"})
    change = admin_client.post(reverse("admin:governance_customer_change", args=[customer.pk]), {"name": "Changed"})
    delete = admin_client.post(reverse("admin:governance_customer_delete", args=[customer.pk]), {"post": "yes"})

    assert (add.status_code, change.status_code, delete.status_code) == (403, 403, 403)
    customer.refresh_from_db()
    assert customer.name == "Kept" and Customer.objects.count() == 1
    assert AuditEntry.objects.count() == before


def test_role_grants_are_read_only_in_the_admin(admin_client):
    """Grants change on the Users page through the audited service, not in the admin."""
    viewer = make_user("viewer")

    response = admin_client.post(reverse("admin:governance_rolegrant_add"), {"user": viewer.pk, "role": "finance"})

    assert response.status_code == 403
    assert not RoleGrant.objects.filter(user=viewer, role="finance").exists()

import pytest
from django.apps import apps
from django.test import Client
from django.urls import reverse

from tests.factories import make_budget, make_customer, make_key, make_team, make_token, make_user

pytestmark = pytest.mark.django_db


def test_every_governance_model_is_in_the_admin_and_no_secret_is_shown():
    key = make_key(team=make_team(customer=make_customer()))
    token = make_token("admin")
    make_budget(scope_type="virtual_key", scope_id=key.key.pk)
    client = Client()
    client.force_login(make_user("admin"))

    for model in apps.get_app_config("governance").get_models():
        meta = model._meta
        changelist = client.get(reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist"))
        assert changelist.status_code == 200, meta.model_name
        obj = model._default_manager.first()
        assert obj is not None, meta.model_name
        detail = client.get(reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[obj.pk]))
        assert detail.status_code == 200, meta.model_name
        for page in (changelist, detail):
            html = page.content.decode()
            for secret in (key.secret, key.key.secret_sha256, token.secret, token.token.token_sha256):
                assert secret not in html, (meta.model_name, secret[:8])

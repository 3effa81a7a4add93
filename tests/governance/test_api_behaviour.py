"""What a client sees: validation, conflicts, secrets shown once, lists, schema."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from governance.models import ApiToken, AuditEntry, Budget, Customer, Team, VirtualKey
from tests.factories import make_budget, make_customer, make_key, make_team, make_token, make_user

pytestmark = pytest.mark.django_db


def counts() -> tuple[int, ...]:
    return tuple(model.objects.count() for model in (Customer, Team, VirtualKey, Budget, AuditEntry))


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/v1/customers/", {"name": "No id"}, "external_id"),
        ("/api/v1/customers/", {"external_id": "x", "name": "X", "currency": "usd"}, "currency"),
        ("/api/v1/customers/", {"external_id": "x", "name": "X", "markup_percent": "-1"}, "markup_percent"),
        ("/api/v1/customers/", {"external_id": "x", "name": "X", "markup_percent": "abc"}, "markup_percent"),
        ("/api/v1/teams/", {"slug": "has space", "name": "T"}, "slug"),
        ("/api/v1/teams/", {"slug": "t", "name": "T", "customer": 999999}, "customer"),
        ("/api/v1/virtual-keys/", {"name": "k", "allowed_models": ["gpt 4"]}, "allowed_models"),
        ("/api/v1/virtual-keys/", {"name": "k", "allowed_models": "openai/*"}, "allowed_models"),
        ("/api/v1/virtual-keys/", {"name": "k", "rate_limit": {"requests_per_minute": 0}}, "rate_limit"),
        ("/api/v1/virtual-keys/", {"name": "k", "expires_at": "2001-01-01T00:00:00Z"}, "expires_at"),
        ("/api/v1/virtual-keys/", {"name": "k", "expires_at": "tomorrow"}, "expires_at"),
        ("/api/v1/budgets/", {"scope_type": "galaxy", "amount": "1"}, "scope_type"),
        ("/api/v1/budgets/", {"scope_type": "team", "amount": "1"}, "scope_id"),
        ("/api/v1/budgets/", {"scope_type": "team", "scope_id": 999999, "amount": "1"}, "scope_id"),
        ("/api/v1/budgets/", {"scope_type": "organization", "amount": "0"}, "amount"),
        ("/api/v1/budgets/", {"scope_type": "organization", "amount": "5", "period": "hourly"}, "period"),
        ("/api/v1/budgets/", {"scope_type": "organization", "amount": "5", "timezone": "Paris"}, "timezone"),
        (
            "/api/v1/budgets/",
            {"scope_type": "organization", "amount": "5", "soft_thresholds": [120]},
            "soft_thresholds",
        ),
        ("/api/v1/api-tokens/", {"name": "t", "role": "superuser"}, "role"),
    ],
)
def test_bad_input_gets_400_naming_the_field_and_changes_nothing(admin_api, path, body, field):
    before = counts()

    response = admin_api.post(path, body, format="json")

    assert response.status_code == 400, response.content
    assert field in response.json(), response.json()
    assert counts() == before


@pytest.mark.parametrize("amount", ["1e400", "NaN", "-Infinity", "12345678901234567890.1"])
def test_non_finite_or_huge_amounts_are_a_400(admin_api, amount):
    body = f'{{"scope_type": "organization", "amount": {amount}}}'
    response = admin_api.post("/api/v1/budgets/", body, content_type="application/json")
    assert response.status_code == 400
    assert not Budget.objects.exists()


def test_unparseable_json_is_a_400(admin_api):
    response = admin_api.post("/api/v1/customers/", "{not json", content_type="application/json")
    assert response.status_code == 400
    assert "detail" in response.json()


def test_unsupported_media_type_is_a_415(admin_api):
    response = admin_api.post("/api/v1/customers/", "<xml/>", content_type="application/xml")
    assert response.status_code == 415


def test_put_is_not_offered(admin_api):
    customer = make_customer()
    response = admin_api.put(f"/api/v1/customers/{customer.pk}/", {"name": "x"}, format="json")
    assert response.status_code == 405


def test_missing_object_is_a_404(admin_api):
    assert admin_api.get("/api/v1/customers/999999/").status_code == 404
    assert admin_api.patch("/api/v1/budgets/999999/", {"amount": "1"}, format="json").status_code == 404


def test_duplicate_external_id_is_a_409_naming_the_field(admin_api):
    make_customer(external_id="acme")
    before = counts()

    response = admin_api.post("/api/v1/customers/", {"external_id": "acme", "name": "Again"}, format="json")

    assert response.status_code == 409
    assert "external_id" in response.json()
    assert counts() == before


def test_deleting_a_customer_still_in_use_is_a_409(admin_api):
    customer = make_customer()
    make_team(customer=customer)
    before = counts()

    response = admin_api.delete(f"/api/v1/customers/{customer.pk}/")

    assert response.status_code == 409
    assert "teams" in response.json()["detail"]
    assert counts() == before


def test_customer_is_created_with_defaults_and_money_as_a_string(admin_api):
    response = admin_api.post("/api/v1/customers/", {"external_id": "acme", "name": "Acme"}, format="json")

    assert response.status_code == 201
    body = response.json()
    assert body["currency"] == "USD"
    assert body["markup_percent"] == "0.0000"


def test_key_secret_is_shown_on_issue_and_never_again(admin_api):
    team = make_team(customer=make_customer())
    created = admin_api.post(
        "/api/v1/virtual-keys/",
        {
            "name": "support bot",
            "team": team.pk,
            "allowed_models": ["openai/gpt-4o-mini", "anthropic/*"],
            "rate_limit": {"requests_per_minute": 60},
        },
        format="json",
    )
    assert created.status_code == 201
    body = created.json()
    assert body["secret"].startswith("vk_")
    assert body["status"] == "active"
    assert body["customer"] == team.customer_id
    assert body["rate_limit"] == {"requests_per_minute": 60, "tokens_per_minute": None}

    read = admin_api.get(f"/api/v1/virtual-keys/{body['id']}/").json()
    listed = admin_api.get("/api/v1/virtual-keys/").json()
    assert "secret" not in read
    assert body["secret"] not in str(listed)
    assert read["secret_prefix"] == body["secret"][:11]


def test_rotation_returns_a_new_secret_and_the_grace_window(admin_api):
    key = make_key().key
    response = admin_api.post(f"/api/v1/virtual-keys/{key.pk}/rotate/", {"grace_seconds": 600}, format="json")

    assert response.status_code == 200
    body = response.json()
    assert body["secret"].startswith("vk_")
    assert body["previous_secret_valid_until"] is not None
    assert body["public_id"] == key.public_id


def test_rotating_a_revoked_key_is_a_409(admin_api):
    key = make_key().key
    admin_api.post(f"/api/v1/virtual-keys/{key.pk}/revoke/")
    response = admin_api.post(f"/api/v1/virtual-keys/{key.pk}/rotate/", {}, format="json")
    assert response.status_code == 409


def test_patching_one_rate_limit_keeps_the_other(admin_api):
    key = make_key(requests_per_minute=60, tokens_per_minute=10_000).key

    response = admin_api.patch(
        f"/api/v1/virtual-keys/{key.pk}/", {"rate_limit": {"tokens_per_minute": 5000}}, format="json"
    )

    assert response.status_code == 200
    assert response.json()["rate_limit"] == {"requests_per_minute": 60, "tokens_per_minute": 5000}


def test_budget_scope_cannot_be_patched(admin_api):
    budget = make_budget()
    response = admin_api.patch(f"/api/v1/budgets/{budget.pk}/", {"scope_type": "team"}, format="json")
    assert response.status_code == 400
    assert "scope_type" in response.json()


def test_budget_reads_back_as_in_the_contract(admin_api):
    customer = make_customer()
    response = admin_api.post(
        "/api/v1/budgets/",
        {
            "scope_type": "customer",
            "scope_id": customer.pk,
            "amount": "1000",
            "period": "monthly",
            "timezone": "Europe/Paris",
            "soft_thresholds": [80, 50],
            "hard_cap": True,
        },
        format="json",
    )
    assert response.status_code == 201
    body = response.json()
    assert body["amount"] == "1000.0000"
    assert body["scope_id"] == customer.pk
    assert body["soft_thresholds"] == [50, 80]


def test_lists_are_paginated_filtered_and_searchable(admin_api):
    for n in range(3):
        make_customer(external_id=f"acme_{n}", name=f"Acme {n}")
    make_customer(external_id="globex", name="Globex")

    page = admin_api.get("/api/v1/customers/", {"page_size": 2}).json()
    assert page["count"] == 4 and len(page["results"]) == 2 and page["next"]

    exact = admin_api.get("/api/v1/customers/", {"external_id": "globex"}).json()
    assert [c["name"] for c in exact["results"]] == ["Globex"]

    found = admin_api.get("/api/v1/customers/", {"search": "acme"}).json()
    assert found["count"] == 3


def test_keys_filter_by_status(admin_api):
    make_key()
    revoked = make_key().key
    admin_api.post(f"/api/v1/virtual-keys/{revoked.pk}/revoke/")

    result = admin_api.get("/api/v1/virtual-keys/", {"status": "revoked"}).json()

    assert [k["id"] for k in result["results"]] == [revoked.pk]


def test_api_token_is_shown_once_and_works(admin_api, anon):
    created = admin_api.post("/api/v1/api-tokens/", {"name": "exporter", "role": "finance"}, format="json").json()
    assert created["token"].startswith("bsr_")
    assert "token" not in admin_api.get(f"/api/v1/api-tokens/{created['id']}/").json()

    anon.credentials(HTTP_AUTHORIZATION=f"Bearer {created['token']}")
    assert anon.get("/api/v1/customers/").status_code == 200
    assert anon.get("/api/v1/virtual-keys/").status_code == 403


def test_openapi_schema_and_docs_are_served(anon, admin_api):
    schema = admin_api.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    for path in ("/api/v1/customers/", "/api/v1/virtual-keys/{id}/rotate/", "/api/v1/budgets/{id}/"):
        assert path in paths
    assert admin_api.get("/api/v1/docs/").status_code == 200
    # The schema is the public contract: it holds no data, so it needs no token.
    assert anon.get("/api/v1/schema/").status_code == 200


def test_token_of_a_deactivated_user_is_refused(anon):
    user = make_user("admin")
    issued = make_token("admin", user=user)
    anon.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.secret}")
    assert anon.get("/api/v1/customers/").status_code == 200

    user.is_active = False
    user.save()

    assert anon.get("/api/v1/customers/").status_code == 401


def test_expired_token_is_refused_and_one_cannot_be_created_expired(admin_api, anon):
    response = admin_api.post(
        "/api/v1/api-tokens/", {"name": "old", "role": "viewer", "expires_at": "2001-01-01T00:00:00Z"}, format="json"
    )
    assert response.status_code == 400 and "expires_at" in response.json()

    issued = make_token("viewer")
    ApiToken.objects.filter(pk=issued.token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    anon.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.secret}")
    assert anon.get("/api/v1/customers/").status_code == 401


def test_moving_a_team_with_keys_to_another_customer_is_a_409(admin_api):
    team = make_team(customer=make_customer())
    make_key(team=team)
    other = make_customer()

    response = admin_api.patch(f"/api/v1/teams/{team.pk}/", {"customer": other.pk}, format="json")

    assert response.status_code == 409
    assert "customer" in response.json()
    team.refresh_from_db()
    assert team.customer_id != other.pk


def test_deeply_nested_json_is_a_400_not_a_500(admin_api):
    customer = make_customer()
    body = '{"name": ' + "[" * 5000 + "]" * 5000 + "}"
    response = admin_api.patch(f"/api/v1/customers/{customer.pk}/", body, content_type="application/json")
    assert response.status_code == 400


def test_api_404s_and_missing_trailing_slashes_answer_json(admin_api):
    assert admin_api.get("/api/v1/customers/abc/").json()["code"] == "not_found"
    response = admin_api.post("/api/v1/customers", {"external_id": "no_slash", "name": "No slash"}, format="json")
    assert response.status_code == 201


def test_token_of_a_demoted_user_loses_the_role(anon):
    from governance.models import RoleGrant

    user = make_user("finance")
    issued = make_token("finance", user=user)
    anon.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.secret}")
    assert anon.get("/api/v1/budgets/").status_code == 200

    RoleGrant.objects.filter(user=user).delete()

    assert anon.get("/api/v1/budgets/").status_code == 403


def test_a_token_cannot_carry_a_role_its_owner_lacks():
    from bursar.errors import InvalidInput

    with pytest.raises(InvalidInput) as error:
        make_token("admin", user=make_user("viewer"))
    assert error.value.field == "role"


def test_status_filter_sees_a_key_past_its_expiry_as_expired(admin_api):
    key = make_key(expires_at=timezone.now() + timedelta(minutes=1)).key
    VirtualKey.objects.filter(pk=key.pk).update(expires_at=timezone.now() - timedelta(seconds=1))

    assert [k["id"] for k in admin_api.get("/api/v1/virtual-keys/", {"status": "expired"}).json()["results"]] == [
        key.pk
    ]
    assert admin_api.get("/api/v1/virtual-keys/", {"status": "active"}).json()["count"] == 0


def test_ipv6_actor_addresses_keep_the_audit_chain_intact(admin_api):
    from governance.audit_chain import verify_audit_chain

    admin_api.post("/api/v1/customers/", {"external_id": "v6", "name": "V6"}, format="json", REMOTE_ADDR="2001:0DB8::1")

    assert AuditEntry.objects.filter(action="customer.create").get().ip == "2001:db8::1"
    assert verify_audit_chain().first_broken_id is None


def test_a_team_whose_keys_are_all_revoked_can_move_to_another_customer(admin_api):
    team = make_team(customer=make_customer())
    key = make_key(team=team).key
    admin_api.post(f"/api/v1/virtual-keys/{key.pk}/revoke/")
    other = make_customer()

    response = admin_api.patch(f"/api/v1/teams/{team.pk}/", {"customer": other.pk}, format="json")

    assert response.status_code == 200


def test_concurrent_edits_of_one_key_both_survive():
    from governance.services.virtual_keys import update_virtual_key
    from tests.factories import ACTOR

    key = make_key(name="old").key
    stale_copy = VirtualKey.objects.get(pk=key.pk)
    update_virtual_key(actor=ACTOR, key=key, changes={"name": "new name"}, now=timezone.now())

    update_virtual_key(actor=ACTOR, key=stale_copy, changes={"allowed_models": ["openai/*"]}, now=timezone.now())

    key.refresh_from_db()
    assert (key.name, key.allowed_models) == ("new name", ["openai/*"])

"""Every governance endpoint x anonymous and each role; a denied call changes nothing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.apps import apps

from governance.services.alerts import create_alert_channel
from governance.services.nodes import register_gateway_node
from tests.factories import ACTOR, make_budget, make_customer, make_key, make_team, make_token

pytestmark = pytest.mark.django_db

ADMIN_ONLY = {"admin"}
ORG_READERS = {"admin", "finance", "viewer"}
KEY_READERS = {"admin", "viewer"}


@dataclass(frozen=True)
class Case:
    name: str
    method: str
    path: Callable[[dict[str, Any]], str]
    allowed: set[str]
    success: int
    body: Callable[[dict[str, Any]], dict[str, Any]] = lambda world: {}


CASES = [
    Case("list customers", "get", lambda w: "/api/v1/customers/", ORG_READERS, 200),
    Case("read customer", "get", lambda w: f"/api/v1/customers/{w['customer'].pk}/", ORG_READERS, 200),
    Case(
        "create customer",
        "post",
        lambda w: "/api/v1/customers/",
        ADMIN_ONLY,
        201,
        lambda w: {"external_id": "new_co", "name": "New Co"},
    ),
    Case(
        "update customer",
        "patch",
        lambda w: f"/api/v1/customers/{w['customer'].pk}/",
        ADMIN_ONLY,
        200,
        lambda w: {"name": "Renamed"},
    ),
    Case("delete customer", "delete", lambda w: f"/api/v1/customers/{w['spare_customer'].pk}/", ADMIN_ONLY, 204),
    Case("list teams", "get", lambda w: "/api/v1/teams/", ORG_READERS, 200),
    Case("read team", "get", lambda w: f"/api/v1/teams/{w['team'].pk}/", ORG_READERS, 200),
    Case(
        "create team",
        "post",
        lambda w: "/api/v1/teams/",
        ADMIN_ONLY,
        201,
        lambda w: {"slug": "new-team", "name": "New team", "customer": w["customer"].pk},
    ),
    Case(
        "update team",
        "patch",
        lambda w: f"/api/v1/teams/{w['team'].pk}/",
        ADMIN_ONLY,
        200,
        lambda w: {"name": "Renamed team"},
    ),
    Case("delete team", "delete", lambda w: f"/api/v1/teams/{w['spare_team'].pk}/", ADMIN_ONLY, 204),
    Case("list keys", "get", lambda w: "/api/v1/virtual-keys/", KEY_READERS, 200),
    Case("read key", "get", lambda w: f"/api/v1/virtual-keys/{w['key'].pk}/", KEY_READERS, 200),
    Case(
        "issue key",
        "post",
        lambda w: "/api/v1/virtual-keys/",
        ADMIN_ONLY,
        201,
        lambda w: {"name": "new key", "team": w["team"].pk},
    ),
    Case(
        "update key",
        "patch",
        lambda w: f"/api/v1/virtual-keys/{w['key'].pk}/",
        ADMIN_ONLY,
        200,
        lambda w: {"allowed_models": ["openai/*"]},
    ),
    Case(
        "rotate key",
        "post",
        lambda w: f"/api/v1/virtual-keys/{w['key'].pk}/rotate/",
        ADMIN_ONLY,
        200,
        lambda w: {"grace_seconds": 60},
    ),
    Case("revoke key", "post", lambda w: f"/api/v1/virtual-keys/{w['key'].pk}/revoke/", ADMIN_ONLY, 200),
    Case("list budgets", "get", lambda w: "/api/v1/budgets/", ORG_READERS, 200),
    Case("read budget", "get", lambda w: f"/api/v1/budgets/{w['budget'].pk}/", ORG_READERS, 200),
    Case(
        "create budget",
        "post",
        lambda w: "/api/v1/budgets/",
        ADMIN_ONLY,
        201,
        lambda w: {"scope_type": "customer", "scope_id": w["customer"].pk, "amount": "500", "period": "monthly"},
    ),
    Case(
        "update budget",
        "patch",
        lambda w: f"/api/v1/budgets/{w['budget'].pk}/",
        ADMIN_ONLY,
        200,
        lambda w: {"amount": "750.5"},
    ),
    Case("delete budget", "delete", lambda w: f"/api/v1/budgets/{w['budget'].pk}/", ADMIN_ONLY, 204),
    Case("budget periods", "get", lambda w: f"/api/v1/budgets/{w['budget'].pk}/periods/", ORG_READERS, 200),
    Case(
        "grant override",
        "post",
        lambda w: f"/api/v1/budgets/{w['budget'].pk}/override/",
        ADMIN_ONLY,
        200,
        lambda w: {"extra_amount": "50", "expires_at": "2099-01-01T00:00:00Z", "reason": "launch"},
    ),
    Case("clear override", "delete", lambda w: f"/api/v1/budgets/{w['budget'].pk}/override/", ADMIN_ONLY, 200),
    Case("list alerts", "get", lambda w: "/api/v1/alerts/", ORG_READERS, 200),
    Case("list channels", "get", lambda w: "/api/v1/alert-channels/", ADMIN_ONLY, 200),
    Case("read channel", "get", lambda w: f"/api/v1/alert-channels/{w['channel'].pk}/", ADMIN_ONLY, 200),
    Case(
        "create channel",
        "post",
        lambda w: "/api/v1/alert-channels/",
        ADMIN_ONLY,
        201,
        lambda w: {"kind": "email", "target": "ops@example.com"},
    ),
    Case(
        "update channel",
        "patch",
        lambda w: f"/api/v1/alert-channels/{w['channel'].pk}/",
        ADMIN_ONLY,
        200,
        lambda w: {"enabled": False},
    ),
    Case("delete channel", "delete", lambda w: f"/api/v1/alert-channels/{w['channel'].pk}/", ADMIN_ONLY, 204),
    Case("list tokens", "get", lambda w: "/api/v1/api-tokens/", ADMIN_ONLY, 200),
    Case(
        "create token",
        "post",
        lambda w: "/api/v1/api-tokens/",
        ADMIN_ONLY,
        201,
        lambda w: {"name": "exporter", "role": "finance"},
    ),
    Case("revoke token", "post", lambda w: f"/api/v1/api-tokens/{w['token'].pk}/revoke/", ADMIN_ONLY, 200),
    Case("list audit", "get", lambda w: "/api/v1/audit/", ADMIN_ONLY, 200),
    Case("list nodes", "get", lambda w: "/api/v1/gateway-nodes/", KEY_READERS, 200),
    Case("read node", "get", lambda w: f"/api/v1/gateway-nodes/{w['node'].pk}/", KEY_READERS, 200),
    Case(
        "register node",
        "post",
        lambda w: "/api/v1/gateway-nodes/",
        ADMIN_ONLY,
        201,
        lambda w: {"name": "gw-new", "kind": "bifrost", "base_url": "http://127.0.0.1:9999"},
    ),
    Case(
        "update node",
        "patch",
        lambda w: f"/api/v1/gateway-nodes/{w['node'].pk}/",
        ADMIN_ONLY,
        200,
        lambda w: {"base_url": "http://127.0.0.1:9998"},
    ),
    Case("config latest", "get", lambda w: "/api/v1/config/latest/", ADMIN_ONLY, 200),
    Case("config push", "post", lambda w: "/api/v1/config/push/", ADMIN_ONLY, 202),
    Case(
        "node push attempts", "get", lambda w: f"/api/v1/gateway-nodes/{w['node'].pk}/push-attempts/", KEY_READERS, 200
    ),
    Case("rotate node token", "post", lambda w: f"/api/v1/gateway-nodes/{w['node'].pk}/rotate-token/", ADMIN_ONLY, 200),
    Case("delete node", "delete", lambda w: f"/api/v1/gateway-nodes/{w['node'].pk}/", ADMIN_ONLY, 204),
    Case("usage", "get", lambda w: "/api/v1/usage/", ORG_READERS, 200),
    Case("list prices", "get", lambda w: "/api/v1/prices/", ORG_READERS, 200),
    Case(
        "add price",
        "post",
        lambda w: "/api/v1/prices/",
        ADMIN_ONLY,
        201,
        lambda w: {"provider": "lab", "model": "m*", "effective_from": "2026-01-01T00:00:00Z"},
    ),
    Case(
        "reprice",
        "post",
        lambda w: "/api/v1/prices/reprice/",
        ADMIN_ONLY,
        202,
        lambda w: {"start": "2026-01-01T00:00:00Z", "end": "2026-02-01T00:00:00Z"},
    ),
]


@pytest.fixture
def world() -> dict[str, Any]:
    customer = make_customer()
    team = make_team(customer=customer)
    key = make_key(team=team).key
    return {
        "customer": customer,
        "spare_customer": make_customer(),
        "team": team,
        "spare_team": make_team(),
        "key": key,
        "budget": make_budget(scope_type="virtual_key", scope_id=key.pk),
        "token": make_token("viewer").token,
        "node": register_gateway_node(actor=ACTOR, name="gw-world").node,
        "channel": create_alert_channel(actor=ACTOR, kind="webhook", target="https://example.com/hook").channel,
    }


def state() -> dict[str, list[dict[str, Any]]]:
    """Every governance row (and users), except the token use time a request itself bumps."""
    snapshot = {}
    tracked = [*apps.get_app_config("governance").get_models(), *apps.get_app_config("billing").get_models()]
    for model in [*tracked, apps.get_model("auth", "User")]:
        rows = list(model.objects.order_by("pk").values())
        for row in rows:
            row.pop("last_used_at", None)
            row.pop("last_seen_at", None)
        snapshot[model.__name__] = rows
    return snapshot


@pytest.mark.parametrize("role", [None, "admin", "finance", "viewer"])
@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_endpoint_answers_each_role_and_a_denied_call_changes_nothing(case, role, world, client_for):
    client = client_for(role)
    before = state()

    response = getattr(client, case.method)(case.path(world), case.body(world), format="json")

    if role is None:
        assert response.status_code == 401, response.content
        assert response["WWW-Authenticate"] == "Bearer"
    elif role in case.allowed:
        assert response.status_code == case.success, response.content
        return
    else:
        assert response.status_code == 403, response.content
    assert state() == before


def test_revoked_token_is_refused(client_for, anon):
    issued = make_token("admin")
    anon.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.secret}")
    assert anon.get("/api/v1/customers/").status_code == 200

    admin = client_for("admin")
    assert admin.post(f"/api/v1/api-tokens/{issued.token.pk}/revoke/").status_code == 200

    assert anon.get("/api/v1/customers/").status_code == 401


@pytest.mark.parametrize("header", ["Bearer", "Bearer bsr_nope", "Bearer a b", "Bearer vk_123", "Bearer bsn_node"])
def test_malformed_or_unknown_tokens_get_401(anon, header):
    anon.credentials(HTTP_AUTHORIZATION=header)
    response = anon.get("/api/v1/customers/")
    assert response.status_code == 401
    assert "detail" in response.json()


def test_token_use_is_recorded(anon):
    issued = make_token("viewer")
    anon.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.secret}")
    anon.get("/api/v1/customers/")
    issued.token.refresh_from_db()
    assert issued.token.last_used_at is not None


def test_writes_are_audited_with_the_token_that_made_them(admin_api):
    response = admin_api.post("/api/v1/customers/", {"external_id": "audited", "name": "Audited"}, format="json")
    assert response.status_code == 201

    entry = admin_api.get("/api/v1/audit/", {"action": "customer.create", "object_id": response.json()["id"]}).json()
    assert entry["count"] == 1
    assert entry["results"][0]["actor"].startswith("token:admin token")
    assert entry["results"][0]["via"] == "api"
    assert entry["results"][0]["after"]["external_id"] == "audited"

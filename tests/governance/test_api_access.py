"""Every API endpoint x anonymous and each role, in and out of scope; a denied call
changes nothing. Out of scope is 404 (a scoped caller learns nothing of what it cannot
see); a role that may not do this at all is 403."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.apps import apps
from django.utils import timezone
from rest_framework.test import APIClient

from bursar.errors import InvalidInput
from governance.services.alerts import create_alert_channel
from governance.services.nodes import register_gateway_node
from governance.services.users import invite, set_grant
from ingest.models import IngestBatch
from ingest.services import process_batch
from tests.factories import (
    ACTOR,
    make_budget,
    make_customer,
    make_key,
    make_team,
    make_token,
    make_user,
    native_event,
)
from tests.principals import EVERYONE, IN_SCOPE, ORG_WIDE, OUT_OF_SCOPE, PRINCIPALS, grant_for

pytestmark = pytest.mark.django_db

ADMIN_ONLY = frozenset({"admin"})
# Reading one object of the world: org-wide roles and those scoped to it; others see 404.
IN_WORLD = ORG_WIDE | IN_SCOPE
KEY_READERS = frozenset({"admin", "viewer"}) | IN_SCOPE  # finance reads spend, not keys
ANY_KEY_READER = KEY_READERS | OUT_OF_SCOPE
KEY_MANAGERS = frozenset({"admin", "lead"})
NODE_READERS = frozenset({"admin", "viewer"})  # nodes serve every team: org-wide only


@dataclass(frozen=True)
class Case:
    name: str
    method: str
    path: Callable[[dict[str, Any]], str]
    allowed: frozenset[str]
    success: int
    body: Callable[[dict[str, Any]], dict[str, Any]] = lambda world: {}
    hidden: frozenset[str] = frozenset()  # may use the endpoint, but the object is out of scope: 404


CASES = [
    Case("list customers", "get", lambda w: "/api/v1/customers/", EVERYONE, 200),
    Case(
        "read customer",
        "get",
        lambda w: f"/api/v1/customers/{w['customer'].pk}/",
        ORG_WIDE | {"cust_viewer"},
        200,
        hidden=frozenset({"lead"}) | OUT_OF_SCOPE,  # a team lead sees its team, not the whole customer
    ),
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
    Case("list teams", "get", lambda w: "/api/v1/teams/", EVERYONE, 200),
    Case("read team", "get", lambda w: f"/api/v1/teams/{w['team'].pk}/", IN_WORLD, 200, hidden=OUT_OF_SCOPE),
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
    Case("list keys", "get", lambda w: "/api/v1/virtual-keys/", ANY_KEY_READER, 200),
    Case("read key", "get", lambda w: f"/api/v1/virtual-keys/{w['key'].pk}/", KEY_READERS, 200, hidden=OUT_OF_SCOPE),
    Case(
        "issue key",
        "post",
        lambda w: "/api/v1/virtual-keys/",
        KEY_MANAGERS,
        201,
        lambda w: {"name": "new key", "team": w["team"].pk},
    ),
    Case(
        "issue key into another team",
        "post",
        lambda w: "/api/v1/virtual-keys/",
        ADMIN_ONLY | {"out_lead"},  # the team out_lead leads
        201,
        lambda w: {"name": "new key", "team": w["other_team"].pk},
    ),
    Case(
        "issue key for another customer",
        "post",
        lambda w: "/api/v1/virtual-keys/",
        ADMIN_ONLY,
        201,
        lambda w: {"name": "new key", "customer": w["other_customer"].pk},  # no team: not a team lead's
    ),
    Case(
        "update key",
        "patch",
        lambda w: f"/api/v1/virtual-keys/{w['key'].pk}/",
        KEY_MANAGERS,
        200,
        lambda w: {"allowed_models": ["openai/*"]},
        hidden=frozenset({"out_lead"}),
    ),
    Case(
        "move key to another team",
        "patch",
        lambda w: f"/api/v1/virtual-keys/{w['key'].pk}/",
        ADMIN_ONLY,
        200,
        lambda w: {"team": w["other_team"].pk},
        hidden=frozenset({"out_lead"}),
    ),
    Case(
        "rotate key",
        "post",
        lambda w: f"/api/v1/virtual-keys/{w['key'].pk}/rotate/",
        KEY_MANAGERS,
        200,
        lambda w: {"grace_seconds": 60},
        hidden=frozenset({"out_lead"}),
    ),
    Case(
        "revoke key",
        "post",
        lambda w: f"/api/v1/virtual-keys/{w['key'].pk}/revoke/",
        KEY_MANAGERS,
        200,
        hidden=frozenset({"out_lead"}),
    ),
    Case("list budgets", "get", lambda w: "/api/v1/budgets/", EVERYONE, 200),
    Case("read budget", "get", lambda w: f"/api/v1/budgets/{w['budget'].pk}/", IN_WORLD, 200, hidden=OUT_OF_SCOPE),
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
    Case(
        "budget periods",
        "get",
        lambda w: f"/api/v1/budgets/{w['budget'].pk}/periods/",
        IN_WORLD,
        200,
        hidden=OUT_OF_SCOPE,
    ),
    Case(
        "grant override",
        "post",
        lambda w: f"/api/v1/budgets/{w['budget'].pk}/override/",
        ADMIN_ONLY,
        200,
        lambda w: {"extra_amount": "50", "expires_at": "2099-01-01T00:00:00Z", "reason": "launch"},
    ),
    Case("clear override", "delete", lambda w: f"/api/v1/budgets/{w['budget'].pk}/override/", ADMIN_ONLY, 200),
    Case("list alerts", "get", lambda w: "/api/v1/alerts/", EVERYONE, 200),
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
    Case("list nodes", "get", lambda w: "/api/v1/gateway-nodes/", NODE_READERS, 200),
    Case("read node", "get", lambda w: f"/api/v1/gateway-nodes/{w['node'].pk}/", NODE_READERS, 200),
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
        "node push attempts", "get", lambda w: f"/api/v1/gateway-nodes/{w['node'].pk}/push-attempts/", NODE_READERS, 200
    ),
    Case("rotate node token", "post", lambda w: f"/api/v1/gateway-nodes/{w['node'].pk}/rotate-token/", ADMIN_ONLY, 200),
    Case("delete node", "delete", lambda w: f"/api/v1/gateway-nodes/{w['node'].pk}/", ADMIN_ONLY, 204),
    Case("usage", "get", lambda w: "/api/v1/usage/", EVERYONE, 200),
    Case("list prices", "get", lambda w: "/api/v1/prices/", EVERYONE, 200),
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
    Case("list users", "get", lambda w: "/api/v1/users/", ADMIN_ONLY, 200),
    Case("read user", "get", lambda w: f"/api/v1/users/{w['user'].pk}/", ADMIN_ONLY, 200),
    Case(
        "deactivate user",
        "patch",
        lambda w: f"/api/v1/users/{w['user'].pk}/",
        ADMIN_ONLY,
        200,
        lambda w: {"is_active": False},
    ),
    Case(
        "grant role",
        "post",
        lambda w: f"/api/v1/users/{w['user'].pk}/grants/",
        ADMIN_ONLY,
        200,
        lambda w: {"role": "team_lead", "teams": [w["team"].pk]},
    ),
    Case("revoke role", "delete", lambda w: f"/api/v1/users/{w['user'].pk}/grants/viewer/", ADMIN_ONLY, 200),
    Case("list invitations", "get", lambda w: "/api/v1/invitations/", ADMIN_ONLY, 200),
    Case(
        "invite",
        "post",
        lambda w: "/api/v1/invitations/",
        ADMIN_ONLY,
        201,
        lambda w: {"email": "new@example.com", "role": "viewer", "customers": [w["customer"].pk]},
    ),
    Case("revoke invitation", "post", lambda w: f"/api/v1/invitations/{w['invitation'].pk}/revoke/", ADMIN_ONLY, 200),
]


@pytest.fixture
def world() -> dict[str, Any]:
    customer = make_customer()
    team = make_team(customer=customer)
    key = make_key(team=team).key
    other_customer = make_customer()
    return {
        "customer": customer,
        "spare_customer": make_customer(),
        "team": team,
        "spare_team": make_team(),
        "other_customer": other_customer,
        "other_team": make_team(customer=other_customer),
        "key": key,
        "user": make_user("viewer"),
        "invitation": invite(actor=ACTOR, email="invited@example.com", role="finance", now=timezone.now()).invitation,
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


def client_of(principal: str | None, world: dict[str, Any]) -> APIClient:
    client = APIClient()
    if principal is not None:
        token = make_token(**grant_for(principal, world))
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token.secret}")
    return client


@pytest.mark.parametrize("principal", [None, *PRINCIPALS])
@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_endpoint_answers_each_role_in_and_out_of_scope_and_a_denied_call_changes_nothing(case, principal, world):
    client = client_of(principal, world)
    before = state()

    response = getattr(client, case.method)(case.path(world), case.body(world), format="json")

    if principal is None:
        assert response.status_code == 401, response.content
        assert response["WWW-Authenticate"] == "Bearer"
    elif principal in case.allowed:
        assert response.status_code == case.success, response.content
        return
    elif principal in case.hidden:
        assert response.status_code == 404, response.content
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


@pytest.fixture
def spend_world(world: dict[str, Any], gateway: APIClient) -> dict[str, Any]:
    """The world with spend: 2 events of $1.25 in ``team`` and 3 of $3.33 in ``other_team``."""
    other_key = make_key(team=world["other_team"]).key
    now = timezone.now().isoformat()
    events = [
        native_event(request_id=f"in-{n}", virtual_key=world["key"].public_id, cost="1.25", timestamp=now)
        for n in range(2)
    ] + [
        native_event(request_id=f"out-{n}", virtual_key=other_key.public_id, cost="3.33", timestamp=now)
        for n in range(3)
    ]
    assert gateway.post("/api/v1/ingest/events", events, format="json").status_code == 202
    for batch_id in IngestBatch.objects.values_list("id", flat=True):
        process_batch(batch_id=batch_id)
    make_budget(scope_type="team", scope_id=world["other_team"].pk)
    return world | {"other_key": other_key}


@pytest.mark.parametrize(
    ("principal", "cost", "customers", "keys"),
    [
        ("finance", "12.49", 3, None),
        ("lead", "2.5", 0, 1),
        ("cust_viewer", "2.5", 1, 1),
        ("out_lead", "9.99", 0, 1),
    ],
)
def test_lists_usage_and_csv_hold_only_what_the_token_may_see(spend_world, principal, cost, customers, keys):
    client = client_of(principal, spend_world)

    usage = client.get("/api/v1/usage/", {"granularity": "total"}).json()["results"]
    assert [row["cost"] for row in usage] == [cost]
    by_team = client.get("/api/v1/usage/", {"granularity": "total", "group_by": "team", "format": "csv"})
    visible_teams = {line.split(",")[0] for line in by_team.content.decode().splitlines()[1:]}
    if principal == "lead":
        assert visible_teams == {spend_world["team"].slug}
    assert client.get("/api/v1/customers/").json()["count"] == customers
    listed = client.get("/api/v1/virtual-keys/")
    if keys is None:
        assert listed.status_code == 403
    else:
        assert listed.json()["count"] == keys
    budgets = {row["id"] for row in client.get("/api/v1/budgets/").json()["results"]}
    assert (spend_world["budget"].pk in budgets) == (principal in ("finance", "lead", "cust_viewer"))


def test_a_users_token_never_sees_more_than_its_owner_does_now(world):
    owner = make_user("team_lead", teams=[world["team"], world["other_team"]])
    issued = make_token("team_lead", user=owner, teams=[world["other_team"]])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.secret}")
    assert client.get(f"/api/v1/teams/{world['other_team'].pk}/").status_code == 200
    assert client.get(f"/api/v1/teams/{world['team'].pk}/").status_code == 404

    set_grant(actor=ACTOR, user=owner, role="team_lead", teams=[world["team"]])  # the owner loses other_team

    assert client.get(f"/api/v1/teams/{world['other_team'].pk}/").status_code == 403  # nothing left in scope
    with pytest.raises(InvalidInput, match="limited to fewer"):
        make_token("team_lead", user=owner, teams=[world["other_team"]])

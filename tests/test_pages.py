"""Every dashboard page x every role, in and out of scope; a scoped user never sees
another team's or customer's numbers (pages, CSV or charts); forms that write go through
the services."""

from __future__ import annotations

import json
import re
from decimal import Decimal

import pytest
from django.test import Client
from django.utils import timezone

from governance.models import AlertChannel, AuditEntry, Budget, VirtualKey
from governance.services.nodes import register_gateway_node
from governance.services.spend import SpendCharge, charge_spend
from ingest.models import IngestBatch
from ingest.services import process_batch
from tests.factories import ACTOR, make_budget, make_customer, make_key, make_team, make_user, native_event
from tests.principals import EVERYONE, IN_SCOPE, ORG_WIDE, OUT_OF_SCOPE, PRINCIPALS, grant_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(gateway):
    customer = make_customer(external_id="acme", name="Acme Corp")
    team = make_team(slug="research", customer=customer)
    key = make_key(team=team, name="support bot").key
    budget = make_budget(scope_type="customer", scope_id=customer.pk, amount=Decimal("5"))
    now = timezone.now()
    events = [
        native_event(
            request_id=f"page-{n}", customer="acme", team="research", virtual_key=key.public_id,
            cost="1.25", timestamp=now.isoformat(), model="gpt-4o-mini" if n % 2 else "gpt-4.1",
        )
        for n in range(6)
    ]  # fmt: skip
    gateway.generic("POST", "/api/v1/ingest/events", json.dumps(events), content_type="application/json")
    for batch_id in IngestBatch.objects.values_list("id", flat=True):
        process_batch(batch_id=batch_id)
    # Another customer, its team and key, with spend of its own: out of every scoped
    # principal's sight but ``out_*``'s.
    other = make_customer(external_id="initech", name="Initech Ltd")
    other_team = make_team(slug="skunkworks", customer=other)
    other_key = make_key(team=other_team, name="initech bot").key
    make_budget(scope_type="team", scope_id=other_team.pk, amount=Decimal("9"))
    events = [
        native_event(
            request_id=f"other-{n}", customer="initech", team="skunkworks", virtual_key=other_key.public_id,
            cost="3.33", timestamp=now.isoformat(), model="claude-secret-model",
        )
        for n in range(3)
    ]  # fmt: skip
    gateway.generic("POST", "/api/v1/ingest/events", json.dumps(events), content_type="application/json")
    for batch_id in IngestBatch.objects.filter(state="pending").values_list("id", flat=True):
        process_batch(batch_id=batch_id)
    register_gateway_node(actor=ACTOR, name="gw-page", base_url="http://127.0.0.1:9")
    return {
        "customer": customer,
        "team": team,
        "key": key,
        "budget": budget,
        "other_customer": other,
        "other_team": other_team,
        "other_key": other_key,
    }


def client_as(role: str, **grant: object) -> Client:
    client = Client()
    client.force_login(make_user(role, **grant))
    return client


def client_of(principal: str, world: dict[str, object]) -> Client:
    grant = grant_for(principal, world)
    return client_as(grant.pop("role"), **grant)


IN_WORLD = ORG_WIDE | IN_SCOPE
KEY_READERS = frozenset({"admin", "viewer"}) | IN_SCOPE
ADMIN = frozenset({"admin"})
# (name, path, allowed, hidden): allowed get 200, hidden (the object is outside their scope)
# 404, everyone else 403.
PAGES = [
    ("overview", lambda w: "/", EVERYONE, frozenset()),
    ("customers", lambda w: "/customers/", EVERYONE, frozenset()),
    ("customer", lambda w: f"/customers/{w['customer'].pk}/", ORG_WIDE | {"cust_viewer"}, {"lead"} | OUT_OF_SCOPE),
    ("teams", lambda w: "/teams/", EVERYONE, frozenset()),
    ("team", lambda w: f"/teams/{w['team'].pk}/", IN_WORLD, OUT_OF_SCOPE),
    ("key spend", lambda w: f"/keys/{w['key'].pk}/", KEY_READERS, OUT_OF_SCOPE),
    ("key events", lambda w: f"/virtual_key/{w['key'].pk}/events/", KEY_READERS, OUT_OF_SCOPE),
    ("team events", lambda w: f"/team/{w['team'].pk}/events/", IN_WORLD, OUT_OF_SCOPE),
    ("events", lambda w: f"/customer/{w['customer'].pk}/events/", ORG_WIDE | {"cust_viewer"}, {"lead"} | OUT_OF_SCOPE),
    ("keys", lambda w: "/keys/", KEY_READERS | OUT_OF_SCOPE, frozenset()),
    ("issue key", lambda w: "/keys/new/", {"admin", "lead", "out_lead"}, frozenset()),
    ("budgets", lambda w: "/budgets/", EVERYONE, frozenset()),
    ("budget", lambda w: f"/budgets/{w['budget'].pk}/", ORG_WIDE | {"cust_viewer"}, {"lead"} | OUT_OF_SCOPE),
    ("new budget", lambda w: "/budgets/new/", ADMIN, frozenset()),
    ("alerts", lambda w: "/alerts/", EVERYONE, frozenset()),
    ("gateways", lambda w: "/gateways/", {"admin", "viewer"}, frozenset()),
    ("prices", lambda w: "/prices/", EVERYONE, frozenset()),
    ("audit", lambda w: "/audit/", ADMIN, frozenset()),
    ("users", lambda w: "/users/", ADMIN, frozenset()),
    ("tokens", lambda w: "/tokens/", ADMIN, frozenset()),
]


@pytest.mark.parametrize("principal", PRINCIPALS)
@pytest.mark.parametrize(("name", "path", "allowed", "hidden"), PAGES, ids=[p[0] for p in PAGES])
def test_every_page_answers_each_role_in_and_out_of_scope(world, principal, name, path, allowed, hidden):
    response = client_of(principal, world).get(path(world))
    expected = 200 if principal in allowed else 404 if principal in hidden else 403
    assert response.status_code == expected, name


@pytest.mark.parametrize(("name", "path", "allowed", "hidden"), PAGES, ids=[p[0] for p in PAGES])
def test_every_page_needs_sign_in(world, name, path, allowed, hidden):
    response = Client().get(path(world))
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


OTHERS = ("initech", "Initech Ltd", "skunkworks", "initech bot", "claude-secret-model", "9.99", "3.33")


@pytest.mark.parametrize("principal", sorted(IN_SCOPE))
def test_a_scoped_user_never_sees_another_customers_numbers_on_any_page_csv_or_chart(world, principal):
    client = client_of(principal, world)
    seen = 0
    for name, path, allowed, _hidden in PAGES:
        if principal not in allowed:
            continue
        for suffix in ("", "?format=csv", "?by=team", "?by=provider"):
            response = client.get(path(world) + suffix)
            assert response.status_code == 200, (name, suffix)
            body = response.content.decode()
            leaked = [word for word in OTHERS if word in body]
            assert not leaked, (name, suffix, leaked)
            seen += 1
    assert seen >= 40
    # ...while the same pages do show the in-scope spend.
    assert "Research" in client.get("/teams/").content.decode() or "research" in client.get("/teams/").content.decode()
    assert "$7.50" in client.get(f"/teams/{world['team'].pk}/").content.decode()


def test_org_wide_roles_see_both_customers(world):
    html = client_as("finance").get("/customers/").content.decode()
    assert "Acme Corp" in html and "Initech Ltd" in html


def test_a_team_lead_issues_keys_only_into_its_teams(world):
    client = client_of("lead", world)
    html = client.get("/keys/new/").content.decode()
    assert "research" in html and "skunkworks" not in html
    refused = client.post("/keys/new/", {"name": "sneaky", "team": world["other_team"].pk})
    assert refused.status_code == 403 and b"teams you lead" in refused.content
    assert not VirtualKey.objects.filter(name="sneaky").exists()
    issued = client.post("/keys/new/", {"name": "team key", "team": world["team"].pk})
    assert b'data-testid="secret"' in issued.content
    assert VirtualKey.objects.get(name="team key").team == world["team"]
    assert client.post(f"/keys/{world['other_key'].pk}/revoke/").status_code == 404
    assert client.post(f"/keys/{world['key'].pk}/revoke/").status_code == 302


def test_the_customer_page_shows_spend_and_a_chart(world):
    response = client_as("finance").get(f"/customers/{world['customer'].pk}/?by=model")
    html = response.content.decode()
    assert 'data-testid="scope-spend">$7.50<' in html
    assert 'id="spend-chart"' in html and "Plotly.newPlot" in html
    assert "gpt-4o-mini" in html and "gpt-4.1" in html
    assert re.search(r'<script src="/static/vendor/plotly\.min\.[0-9a-f]+\.js"', html)  # served locally, never a CDN
    assert "cdn" not in html.lower()


@pytest.mark.parametrize(
    ("path", "header"),
    [
        ("/customers/?format=csv", "external_id,name,currency,cost_usd"),
        ("/customers/{customer}/?format=csv&by=model", "bucket,model,requests"),
        ("/customer/{customer}/events/?format=csv", "occurred_at,request_id"),
        ("/keys/?format=csv", "public_id,name"),
        ("/teams/?format=csv", "slug,name,customer"),
        ("/budgets/?format=csv", "id,scope_type"),
        ("/alerts/?format=csv", "id,fired_at"),
        ("/audit/?format=csv", "id,at,actor"),
        ("/prices/?format=csv", "provider,model"),
    ],
)
def test_csv_exports(world, path, header):
    response = client_as("admin").get(path.format(customer=world["customer"].pk))
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert response.content.decode().splitlines()[0].startswith(header)


def test_customers_table_sorts_searches_and_compares(world):
    make_customer(external_id="globex", name="Globex")
    client = client_as("finance")
    html = client.get("/customers/?sort=-cost").content.decode()
    assert html.index("Acme Corp") < html.index("Globex")
    assert "Globex" not in client.get("/customers/?q=acm").content.decode()
    assert "new" in html  # no spend in the previous range to compare with


def test_a_bad_date_range_is_explained_not_a_500(world):
    response = client_as("finance").get("/customers/?start=2026-13-45&end=x")
    assert response.status_code == 200 and b"YYYY-MM-DD" in response.content


def test_issuing_a_key_shows_the_secret_once(world):
    client = client_as("admin")
    response = client.post(
        "/keys/new/",
        {"name": "from the page", "team": world["team"].pk, "allowed_models": "openai/gpt-4o-mini\nanthropic/*",
         "requests_per_minute": "60"},
    )  # fmt: skip
    assert response.status_code == 200
    secret = response.context["secret"]
    assert secret.startswith("vk_") and secret in response.content.decode()
    key = VirtualKey.objects.get(name="from the page")
    assert key.allowed_models == ["openai/gpt-4o-mini", "anthropic/*"] and key.requests_per_minute == 60
    assert secret not in client.get(f"/keys/{key.pk}/").content.decode()
    assert AuditEntry.objects.filter(action="virtual_key.issue", via="ui").exists()


def test_a_bad_key_form_names_the_field_and_keeps_the_input(world):
    response = client_as("admin").post("/keys/new/", {"name": "", "allowed_models": "not a pattern!!"})
    html = response.content.decode()
    assert response.status_code == 200 and "not a pattern!!" in html
    assert response.context["errors"].keys() & {"name", "allowed_models"}


def test_revoking_and_rotating_from_the_key_page(world):
    client = client_as("admin")
    rotated = client.post(f"/keys/{world['key'].pk}/rotate/", {"grace_seconds": "3600"})
    assert rotated.status_code == 200 and rotated.context["secret"].startswith("vk_")
    revoked = client.post(f"/keys/{world['key'].pk}/revoke/")
    assert revoked.status_code == 302
    assert VirtualKey.objects.get(pk=world["key"].pk).status == "revoked"
    assert client.get(f"/keys/{world['key'].pk}/revoke/").status_code == 405
    assert client_as("viewer").post(f"/keys/{world['key'].pk}/rotate/").status_code == 403


def test_budget_forms_create_change_and_override(world):
    client = client_as("admin")
    created = client.post(
        "/budgets/new/",
        {"scope_type": "team", "scope_team": world["team"].pk, "amount": "100", "period": "weekly",
         "timezone": "Europe/Paris", "soft_thresholds": "50, 90", "hard_cap": "on"},
    )  # fmt: skip
    budget = Budget.objects.get(team=world["team"])
    assert created.status_code == 302 and budget.period == "weekly" and budget.soft_thresholds == [50, 90]
    changed = client.post(f"/budgets/{budget.pk}/", {"action": "update", "amount": "3", "soft_thresholds": "50"})
    assert changed.status_code == 302 and Budget.objects.get(pk=budget.pk).amount == Decimal("3")
    assert VirtualKey.objects.get(pk=world["key"].pk).status == "blocked"  # 7.50 spent over 3
    bad = client.post(f"/budgets/{budget.pk}/", {"action": "override", "extra_amount": "10", "reason": "x"})
    assert bad.status_code == 200 and "expires_at" in bad.context["errors"]
    assert client_as("finance").post(f"/budgets/{budget.pk}/", {"action": "update", "amount": "9"}).status_code == 403


def test_channels_are_added_with_the_secret_shown_once(world):
    client = client_as("admin")
    response = client.post("/alerts/channels/", {"kind": "webhook", "target": "https://example.com/hook"})
    assert response.status_code == 200 and response.context["secret"].startswith("whsec_")
    channel = AlertChannel.objects.get()
    assert client.get("/alerts/").content.decode().count("whsec_") == 0
    assert "whsec_" not in str(client.session.items())  # not kept in a message or the session
    client.post("/alerts/channels/", {"action": "disable", "channel": channel.pk})
    assert not AlertChannel.objects.get().enabled
    refused = client.post("/alerts/channels/", {"kind": "email", "target": "nope"})
    assert refused.status_code == 400 and "target" in refused.context["errors"]


def test_registering_a_node_from_the_page_shows_its_token_once(world):
    response = client_as("admin").post("/gateways/", {"name": "gw-new", "kind": "generic", "base_url": ""})
    token = response.context["registered"].ingest_token
    assert token.startswith("bsn_") and token in response.content.decode()


def test_empty_states_tell_a_new_user_what_to_do():
    client = client_as("admin")
    assert b"/api/v1/ingest/events" in client.get("/").content
    assert b"Issue a key" in client.get("/keys/").content
    assert b"No budgets" in client.get("/budgets/").content
    assert b"Register each gateway" in client.get("/gateways/").content


def test_the_overview_flags_budgets_near_caps(world):
    charge_spend(charges=[SpendCharge(timezone.now(), Decimal("1"), world["customer"].pk, None, None)])
    html = client_as("finance").get("/").content.decode()
    assert f"Budget {world['budget'].pk}" in html and "exceeded" in html


def test_cost_per_unit_of_work_comes_from_event_units(gateway):
    customer = make_customer(external_id="renders_inc")
    now = timezone.now().isoformat()
    events = [
        native_event(request_id=f"unit-{n}", customer="renders_inc", cost="0.5", timestamp=now, units={"renders": 2})
        for n in range(4)
    ]
    gateway.generic("POST", "/api/v1/ingest/events", json.dumps(events), content_type="application/json")
    for batch_id in IngestBatch.objects.values_list("id", flat=True):
        process_batch(batch_id=batch_id)

    html = client_as("finance").get(f"/customers/{customer.pk}/").content.decode()

    assert "Cost per renders" in html and 'data-testid="per-unit">$0.2500<' in html  # $2.00 over 8 renders


@pytest.mark.parametrize(
    "path",
    [
        "/customers/?start=2024-01-01&end=9999-12-31",
        "/keys/?page=²",
        "/keys/?page=99999999999999999999999",
        "/alerts/?budget=99999999999999999999999&page=-3",
        "/alerts/?budget=abc",
        "/audit/?since=2024-02-30&until=2024-13-01",
        "/audit/?page=" + "9" * 5000,
        "/customer/1/events/?page=x",
        "/budgets/1/?page=²",
    ],
)
def test_odd_query_strings_never_500(world, path):
    assert client_as("admin").get(path).status_code in (200, 404)


def test_keys_and_teams_without_a_customer_list_fine(world):
    make_key(name="internal tool")
    make_team(slug="platform")
    client = client_as("admin")
    assert b"internal tool" in client.get("/keys/").content
    assert b"platform" in client.get("/teams/").content


@pytest.mark.parametrize(
    "form",
    [
        {"action": "delete", "channel": "abc"},
        {"action": "disable", "channel": ""},
        {"action": "enable", "channel": "99999999999999999999999"},
    ],
)
def test_odd_channel_forms_are_404_not_500(world, form):
    assert client_as("admin").post("/alerts/channels/", form).status_code == 404


def test_rotate_with_an_absurd_grace_is_clamped_not_a_500(world):
    response = client_as("admin").post(f"/keys/{world['key'].pk}/rotate/", {"grace_seconds": "9" * 30})
    assert response.status_code == 200


def test_thresholds_with_percent_signs_are_understood_and_junk_is_refused(world):
    client = client_as("admin")
    budget = world["budget"]
    client.post(f"/budgets/{budget.pk}/", {"action": "update", "amount": "50", "soft_thresholds": "50%, 80%"})
    assert Budget.objects.get(pk=budget.pk).soft_thresholds == [50, 80]
    refused = client.post(f"/budgets/{budget.pk}/", {"action": "update", "amount": "50", "soft_thresholds": "half"})
    assert refused.status_code == 200 and "soft_thresholds" in refused.context["errors"]


# (name, path, form, allowed, hidden): every page that writes. Allowed principals succeed;
# for everyone else the answer is 403 (or 404 for an object outside its scope) and the
# database is exactly as it was.
WRITES = [
    ("issue key", lambda w: "/keys/new/", lambda w: {"name": "k", "team": w["team"].pk}, {"admin", "lead"}, set()),
    ("rotate key", lambda w: f"/keys/{w['key'].pk}/rotate/", lambda w: {}, {"admin", "lead"}, {"out_lead"}),
    ("revoke key", lambda w: f"/keys/{w['key'].pk}/revoke/", lambda w: {}, {"admin", "lead"}, {"out_lead"}),
    (
        "new budget",
        lambda w: "/budgets/new/",
        lambda w: {"scope_type": "team", "scope_team": w["team"].pk, "amount": "5", "period": "monthly"},
        {"admin"},
        set(),
    ),
    (
        "change budget",
        lambda w: f"/budgets/{w['budget'].pk}/",
        lambda w: {"action": "update", "amount": "9", "soft_thresholds": "50"},
        {"admin"},
        {"lead", "out_lead", "out_viewer"},
    ),
    (
        "add channel",
        lambda w: "/alerts/channels/",
        lambda w: {"kind": "email", "target": "x@example.com"},
        {"admin"},
        set(),
    ),
    ("register node", lambda w: "/gateways/", lambda w: {"name": "gw-x", "kind": "generic"}, {"admin"}, set()),
    ("push config", lambda w: "/gateways/", lambda w: {"action": "push"}, {"admin"}, set()),
    (
        "add price",
        lambda w: "/prices/",
        lambda w: {"action": "add", "provider": "lab", "model": "m", "effective_from": "2026-01-01T00:00:00Z"},
        {"admin"},
        set(),
    ),
    (
        "invite",
        lambda w: "/users/",
        lambda w: {"action": "invite", "email": "new@example.com", "role": "viewer"},
        {"admin"},
        set(),
    ),
    ("create token", lambda w: "/tokens/", lambda w: {"name": "t", "role": "viewer"}, {"admin"}, set()),
]


def database_state() -> dict[str, list[dict[str, object]]]:
    from django.apps import apps

    tracked = [*apps.get_app_config("governance").get_models(), *apps.get_app_config("billing").get_models()]
    snapshot = {}
    for model in [*tracked, apps.get_model("auth", "User")]:
        rows = list(model.objects.order_by("pk").values())
        for row in rows:
            row.pop("last_login", None)  # the sign-in of the test client itself
        snapshot[model.__name__] = rows
    return snapshot


@pytest.mark.parametrize("principal", PRINCIPALS)
@pytest.mark.parametrize(("name", "path", "form", "allowed", "hidden"), WRITES, ids=[w[0] for w in WRITES])
def test_every_page_write_by_each_role_and_a_denied_one_changes_nothing(
    world, principal, name, path, form, allowed, hidden
):
    client = client_of(principal, world)
    before = database_state()

    response = client.post(path(world), form(world))

    if principal in allowed:
        assert response.status_code in (200, 302), (name, response.status_code)
        assert database_state() != before, f"{name} by {principal} changed nothing"
        return
    assert response.status_code == (404 if principal in hidden else 403), name
    assert database_state() == before

"""Desired state, revisions and delivery to generic gateways on real loopback servers."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from governance.desired_state import canonical_json, content_sha256, render_desired_state
from governance.models import ConfigPushAttempt, ConfigRevision, GatewayNode
from governance.services.budgets import update_budget
from governance.services.config import check_drift, converge_nodes, latest_revision, push_config, revise_config
from governance.services.nodes import register_gateway_node, update_gateway_node
from governance.services.spend import SpendCharge, charge_spend
from governance.services.virtual_keys import revoke_virtual_key, rotate_virtual_key, update_virtual_key
from tests.factories import ACTOR, make_budget, make_customer, make_key, make_team
from tests.fakes.generic import GenericGateway


@pytest.fixture(autouse=True)
def _settings(settings):
    settings.BUDGET_FORECAST_MIN_ELAPSED_PERCENT = 100
    settings.CONFIG_PUSH_CONCURRENCY = 1  # one connection: the test's transaction sees the pushes
    settings.CONFIG_PUSH_TIMEOUT_SECONDS = 2


@pytest.fixture
def gateways():
    started: list[GenericGateway] = []

    def start(count: int = 1) -> list[tuple[GatewayNode, GenericGateway]]:
        pairs = []
        for n in range(count):
            fake = GenericGateway()
            started.append(fake)
            registered = register_gateway_node(actor=ACTOR, name=f"gw-{len(started)}-{n}", base_url=fake.url)
            fake.ingest_token = registered.ingest_token
            pairs.append((registered.node, fake))
        return pairs

    yield start
    for fake in started:
        fake.close()


def current() -> ConfigRevision:
    revision = latest_revision()
    assert revision is not None
    return revision


def entry(content, public_id):
    return next(e for e in content["virtual_keys"] if e["id"] == public_id)


@pytest.mark.django_db
def test_the_desired_state_holds_what_gateways_enforce_and_no_secret():
    customer = make_customer(external_id="acme")
    team = make_team(slug="research", customer=customer)
    issued = make_key(team=team, allowed_models=["openai/gpt-4o-mini"], requests_per_minute=60, name="support bot")
    revoked = make_key(customer=customer).key
    revoke_virtual_key(actor=ACTOR, key=revoked, now=timezone.now())
    make_budget(scope_type="customer", scope_id=customer.pk, amount=Decimal("100"))
    make_budget(scope_type="team", scope_id=team.pk, amount=Decimal("30"))
    make_budget(amount=Decimal("5"), hard_cap=False)  # not a cap: not in budget_remaining
    charge_spend(charges=[SpendCharge(timezone.now(), Decimal("12.5"), customer.pk, team.pk, None)])

    content = render_desired_state(now=timezone.now())

    assert [e["id"] for e in content["virtual_keys"]] == [issued.key.public_id]
    key = entry(content, issued.key.public_id)
    assert key == {
        "id": issued.key.public_id,
        "name": "support bot",
        "secret_sha256": issued.key.secret_sha256,
        "status": "active",
        "blocked_reason": None,
        "allowed_models": ["openai/gpt-4o-mini"],
        "rate_limit": {"requests_per_minute": 60, "tokens_per_minute": None},
        "budget_remaining": "17.5000",  # the team's 30 - 12.5 is tighter than the customer's 87.5
        "customer": "acme",
        "team": "research",
        "expires_at": None,
    }
    assert issued.secret not in canonical_json(content)


@pytest.mark.django_db
def test_rendering_is_deterministic_and_a_blocked_key_says_why():
    customer = make_customer(external_id="capped")
    key = make_key(customer=customer).key
    budget = make_budget(scope_type="customer", scope_id=customer.pk, amount=Decimal("10"))
    charge_spend(charges=[SpendCharge(timezone.now(), Decimal("10"), customer.pk, None, None)])
    now = timezone.now()

    first, second = render_desired_state(now=now), render_desired_state(now=now)

    assert content_sha256(canonical_json(first)) == content_sha256(canonical_json(second))
    blocked = entry(first, key.public_id)
    assert blocked["status"] == "blocked" and blocked["budget_remaining"] == "0.0000"
    assert blocked["blocked_reason"] == f"budget {budget.pk} exceeded (monthly, customer capped)"


@pytest.mark.django_db
def test_a_rotation_grace_window_is_in_the_document_until_it_ends():
    key = make_key().key
    now = timezone.now()
    rotate_virtual_key(actor=ACTOR, key=key, grace=timedelta(hours=1), now=now)
    during = entry(render_desired_state(now=now), key.public_id)
    assert during["previous_secret_sha256"] and during["previous_secret_valid_until"]
    after = entry(render_desired_state(now=now + timedelta(hours=2)), key.public_id)
    assert "previous_secret_sha256" not in after


@pytest.mark.django_db
def test_a_revision_is_made_only_when_the_state_changes():
    make_key()
    first = revise_config(reason="test")
    assert first is not None and first.version >= 1
    assert revise_config(reason="again, nothing changed") is None
    make_key()
    second = revise_config(reason="a key was issued")
    assert second is not None and second.version > first.version and second.sha256 != first.sha256


@pytest.mark.django_db
def test_changes_make_revisions_through_the_hook_and_a_burst_makes_one(settings, django_capture_on_commit_callbacks):
    settings.CELERY_TASK_ALWAYS_EAGER = True  # the hook's task runs in-process here
    customer = make_customer()
    with django_capture_on_commit_callbacks(execute=True):
        keys = [make_key(customer=customer).key for _ in range(20)]
    after_issue = ConfigRevision.objects.count()
    assert after_issue >= 1
    budgets = [make_budget(scope_type="customer", scope_id=customer.pk, amount=Decimal("1")) for _ in range(3)]
    revisions_before = ConfigRevision.objects.count()

    with django_capture_on_commit_callbacks(execute=True):
        # One charge crosses three caps and blocks twenty keys: several hook calls, one revision.
        charge_spend(charges=[SpendCharge(timezone.now(), Decimal("5"), customer.pk, None, None)])

    assert ConfigRevision.objects.count() == revisions_before + 1
    latest = latest_revision()
    assert latest is not None and latest.urgent
    assert all(e["status"] == "blocked" for e in json.loads(latest.document)["virtual_keys"])
    with django_capture_on_commit_callbacks(execute=True):
        update_virtual_key(actor=ACTOR, key=keys[0], changes={"name": keys[0].name}, now=timezone.now())
    assert ConfigRevision.objects.count() == revisions_before + 1  # a no-op change makes none
    assert budgets


@pytest.mark.django_db
def test_a_generic_node_gets_the_document_signed_with_its_token(gateways):
    make_key(allowed_models=["anthropic/*"])
    [(node, fake)] = gateways(1)

    report = push_config()

    revision = latest_revision()
    assert revision is not None and report.pushed == [node.pk]
    assert fake.version == revision.version  # the fake checked the signature and version header
    assert fake.applied is not None and fake.applied["issued_at"].endswith("Z")
    assert content_sha256(canonical_json({"virtual_keys": fake.applied["virtual_keys"]})) == revision.sha256
    node.refresh_from_db()
    assert (node.applied_version, node.last_error, node.push_failures) == (revision.version, "", 0)
    assert ConfigPushAttempt.objects.get(node=node).succeeded


@pytest.mark.django_db
def test_a_wrong_signature_is_refused_by_the_node_and_recorded(gateways):
    make_key()
    [(node, fake)] = gateways(1)
    fake.ingest_token = "bsn_not_the_token"

    report = push_config()

    assert report.failed and "401" in report.failed[node.pk]
    node.refresh_from_db()
    assert node.push_failures == 1 and node.next_push_at is not None and node.applied_version is None


@pytest.mark.django_db
def test_a_node_that_is_down_converges_when_it_returns(gateways):
    make_key()
    [(node, fake)] = gateways(1)
    fake.stop()

    first = push_config()
    assert "ConnectError" in first.failed[node.pk]
    node.refresh_from_db()
    waited = (node.next_push_at - timezone.now()).total_seconds()
    assert 0.5 <= waited <= 1.5  # the first backoff: 1 s ± 25%
    push_config()  # and it fails again: the backoff grows
    node.refresh_from_db()
    assert node.push_failures == 2

    make_key()  # meanwhile a newer revision
    revise_config(reason="newer")
    fake.start()
    assert converge_nodes(now=timezone.now()).pushed == 0  # not due yet
    report = converge_nodes(now=timezone.now() + timedelta(minutes=1))

    revision = latest_revision()
    assert revision is not None and report.pushed == 1
    assert fake.received_versions == [revision.version]  # only the latest, never an older one
    node.refresh_from_db()
    assert (node.applied_version, node.push_failures, node.last_error) == (revision.version, 0, "")


@pytest.mark.django_db
def test_drift_is_seen_and_repaired(gateways):
    make_key()
    [(node, fake)] = gateways(1)
    push_config()
    fake.forget()  # the gateway restarted and forgot its config

    assert check_drift(node_id=node.pk, now=timezone.now()) is True

    assert fake.applied is not None
    node.refresh_from_db()
    assert node.drift == "" and node.last_checked_at is not None  # repaired
    repair = ConfigPushAttempt.objects.get(node=node, action="repair")
    assert repair.succeeded and "holds no config" in repair.detail
    assert check_drift(node_id=node.pk, now=timezone.now()) is False
    node.refresh_from_db()
    assert node.drift == ""


@pytest.mark.django_db
def test_pull_mode_with_etag(client_for, gateway, node):
    make_key()
    first = gateway.get("/api/v1/gateway-config")
    assert first.status_code == 200
    etag = first["ETag"]
    document = json.loads(first.content)
    assert etag == f'"{current().sha256}"' and first["X-Bursar-Version"] == str(document["version"])

    again = gateway.get("/api/v1/gateway-config", HTTP_IF_NONE_MATCH=etag)
    assert again.status_code == 304 and again.content == b""
    node.node.refresh_from_db()
    assert node.node.applied_version == document["version"]

    make_key()
    revise_config(reason="changed")
    changed = gateway.get("/api/v1/gateway-config", HTTP_IF_NONE_MATCH=etag)
    assert changed.status_code == 200 and changed["ETag"] != etag
    assert client_for("admin").get("/api/v1/gateway-config").status_code == 401  # node tokens only


@pytest.mark.django_db
def test_config_latest_and_push_endpoints(client_for, gateways):
    make_key()
    [(node, _fake)] = gateways(1)
    latest = client_for("admin").get("/api/v1/config/latest/")
    assert latest.status_code == 200
    body = latest.json()
    assert set(body) == {"version", "sha256", "created_at", "reason", "urgent", "document"}
    assert body["document"]["version"] == body["version"]
    assert client_for("viewer").get("/api/v1/config/latest/").status_code == 403  # it holds secret hashes
    assert client_for("viewer").post("/api/v1/config/push/").status_code == 403

    pushed = client_for("admin").post("/api/v1/config/push/")

    assert pushed.status_code == 202 and pushed.json()["nodes"] == 1
    read = client_for("admin").get(f"/api/v1/gateway-nodes/{node.pk}/").json()
    assert read["mode"] == "push" and read["drift"] == "" and read["push_failures"] == 0
    attempts = client_for("admin").get(f"/api/v1/gateway-nodes/{node.pk}/push-attempts/").json()["results"]
    assert attempts == [] or attempts[0]["action"] == "apply"


@pytest.mark.django_db
def test_rotating_a_node_token_shows_it_once_and_the_old_one_stops(client_for, gateway, node):
    rotated = client_for("admin").post(f"/api/v1/gateway-nodes/{node.node.pk}/rotate-token/")
    assert rotated.status_code == 200 and rotated.json()["ingest_token"].startswith("bsn_")
    assert gateway.get("/api/v1/gateway-config").status_code == 401
    assert client_for("viewer").post(f"/api/v1/gateway-nodes/{node.node.pk}/rotate-token/").status_code == 403


@pytest.mark.django_db
def test_changing_a_node_address_starts_it_over(gateways):
    make_key()
    [(node, fake)] = gateways(1)
    push_config()
    other = GenericGateway(ingest_token=fake.ingest_token)
    try:
        update_gateway_node(actor=ACTOR, node=node, changes={"base_url": other.url})
        node.refresh_from_db()
        assert node.applied_version is None
        push_config()
        assert other.version == current().version
    finally:
        other.close()


@pytest.mark.django_db(transaction=True)
def test_a_hanging_or_garbage_node_does_not_hold_up_the_others(settings):
    if connection.vendor != "postgresql":
        pytest.fail("needs PostgreSQL")
    settings.CONFIG_PUSH_CONCURRENCY = 8
    settings.CONFIG_PUSH_TIMEOUT_SECONDS = 3
    make_key()
    fakes = [GenericGateway() for _ in range(4)]
    try:
        for n, fake in enumerate(fakes):
            fake.ingest_token = register_gateway_node(actor=ACTOR, name=f"gw-{n}", base_url=fake.url).ingest_token
        fakes[0].delay_seconds = 10  # hangs past the timeout
        fakes[1].garbage = True  # answers something that is not HTTP
        started = time.monotonic()

        report = push_config()

        assert sorted(report.failed) == sorted(
            GatewayNode.objects.filter(name__in=["gw-0", "gw-1"]).values_list("pk", flat=True)
        )
        assert "Timeout" in report.failed[GatewayNode.objects.get(name="gw-0").pk]
        version = current().version
        assert fakes[2].version == version and fakes[3].version == version
        # The healthy nodes were done long before the hanging one timed out.
        assert max(fakes[2].applied_at[version], fakes[3].applied_at[version]) - started < 2
    finally:
        for fake in fakes:
            fake.close()


@pytest.mark.django_db(transaction=True)
def test_a_node_never_gets_an_older_revision_after_a_newer_one(settings):
    if connection.vendor != "postgresql":
        pytest.fail("needs PostgreSQL")
    settings.CONFIG_PUSH_CONCURRENCY = 4
    make_key()
    fake = GenericGateway()
    try:
        fake.ingest_token = register_gateway_node(actor=ACTOR, name="slow", base_url=fake.url).ingest_token
        fake.delay_seconds = 0.5
        older = revise_config(reason="v1")

        def push_then_close() -> None:
            try:
                push_config()
            finally:
                connection.close()

        slow_push = threading.Thread(target=push_then_close)
        slow_push.start()
        time.sleep(0.1)  # the first push holds the node, sending the older revision slowly
        make_key()
        newer = revise_config(reason="v2")
        push_config()  # waits for the node, then sends the newer one
        slow_push.join(timeout=10)

        assert older is not None and newer is not None
        assert fake.received_versions == [older.version, newer.version]
        assert GatewayNode.objects.get(name="slow").applied_version == newer.version
    finally:
        fake.close()


@pytest.mark.django_db
def test_raising_a_budget_unblocks_in_the_next_revision(settings, django_capture_on_commit_callbacks, gateways):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    customer = make_customer()
    key = make_key(customer=customer).key
    budget = make_budget(scope_type="customer", scope_id=customer.pk, amount=Decimal("10"))
    [(_node, fake)] = gateways(1)
    with django_capture_on_commit_callbacks(execute=True):
        charge_spend(charges=[SpendCharge(timezone.now(), Decimal("10"), customer.pk, None, None)])
    assert fake.blocked(key.public_id)

    with django_capture_on_commit_callbacks(execute=True):
        update_budget(actor=ACTOR, budget=budget, changes={"amount": Decimal("50")}, now=timezone.now())

    assert not fake.blocked(key.public_id) and fake.version == current().version


@pytest.mark.django_db
def test_the_delivered_body_is_the_canonical_document():
    from governance.services.config import revision_document, revision_for_delivery

    make_key(allowed_models=["openai/*"])
    make_key()
    revision = current()
    delivery = revision_for_delivery(revision)
    assert delivery.body == canonical_json(revision_document(revision)).encode()
    assert revision_for_delivery(revision) is delivery  # built once, shared by every node's push
    assert delivery.content == json.loads(revision.document)

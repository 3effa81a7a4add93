"""The Bifrost and LiteLLM adapters against contract fakes of their management APIs."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from governance.models import GatewayNode, VirtualKey
from governance.services.config import check_drift, latest_revision, push_config, revise_config
from governance.services.nodes import register_gateway_node
from governance.services.spend import SpendCharge, charge_spend
from governance.services.virtual_keys import (
    end_grace_windows,
    revoke_virtual_key,
    rotate_virtual_key,
    update_virtual_key,
)
from tests.factories import ACTOR, make_budget, make_customer, make_key, make_team
from tests.fakes.bifrost import FakeBifrost
from tests.fakes.litellm import FakeLiteLLM

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _settings(settings):
    settings.BUDGET_FORECAST_MIN_ELAPSED_PERCENT = 100
    settings.CONFIG_PUSH_CONCURRENCY = 1
    settings.CONFIG_PUSH_TIMEOUT_SECONDS = 2


@pytest.fixture
def bifrost():
    fake = FakeBifrost(username="admin", password="s3cret-pass")
    node = register_gateway_node(
        actor=ACTOR, name="bifrost-1", kind="bifrost", base_url=fake.url, admin_token="admin:s3cret-pass"
    ).node
    yield node, fake
    fake.close()


@pytest.fixture
def litellm():
    fake = FakeLiteLLM(master_key="sk-master-key-0123456789")
    node = register_gateway_node(
        actor=ACTOR, name="litellm-1", kind="litellm", base_url=fake.url, admin_token="sk-master-key-0123456789"
    ).node
    yield node, fake
    fake.close()


def world():
    customer = make_customer(external_id="acme")
    team = make_team(slug="research", customer=customer)
    team_key = make_key(team=team, allowed_models=["openai/gpt-4o-mini", "anthropic/*"], requests_per_minute=60)
    customer_key = make_key(customer=customer, tokens_per_minute=50_000)
    open_key = make_key()
    return customer, team, team_key, customer_key, open_key


def pushed(node: GatewayNode) -> GatewayNode:
    report = push_config()
    node.refresh_from_db()
    assert node.pk in report.pushed, (report.failed, node.last_error)
    return node


# --- Bifrost ------------------------------------------------------------------------------


def test_bifrost_gets_keys_teams_and_customers_with_its_request_shapes(bifrost):
    node, fake = bifrost
    _, _, team_key, customer_key, open_key = world()

    pushed(node)

    customers = {c["name"]: c for c in fake.customers.values()}
    teams = {t["name"]: t for t in fake.teams.values()}
    assert set(customers) == {"acme"} and teams["research"]["customer_id"] == customers["acme"]["id"]
    vk = fake.by_name(team_key.key.public_id)
    assert vk is not None and vk["is_active"] is True
    assert vk["team_id"] == teams["research"]["id"] and vk["customer_id"] is None
    assert vk["rate_limit"] == {
        "request_max_limit": 60,
        "request_reset_duration": "1m",
        "token_max_limit": None,
        "token_reset_duration": None,
    }
    configs = sorted((c["provider"], c["allowed_models"]) for c in vk["provider_configs"])
    assert configs == [("anthropic", ["*"]), ("openai", ["gpt-4o-mini"])]
    by_customer = fake.by_name(customer_key.key.public_id)
    assert by_customer is not None and by_customer["customer_id"] == customers["acme"]["id"]
    assert by_customer["rate_limit"]["token_max_limit"] == 50_000
    open_vk = fake.by_name(open_key.key.public_id)
    assert open_vk is not None and open_vk["provider_configs"] == []  # every model: Bifrost's own setting
    assert node.state["keys"][team_key.key.public_id] == vk["id"]


def test_bifrost_admin_auth_is_http_basic_and_a_wrong_password_is_reported(bifrost):
    node, fake = bifrost
    world()
    fake.credentials = "admin:changed"

    report = push_config()

    assert "401" in report.failed[node.pk] and "Unauthorized" in report.failed[node.pk]
    fake.credentials = "admin:s3cret-pass"  # the fake accepts only Basic base64("admin:s3cret-pass")
    pushed(node)


def test_bifrost_block_revoke_and_a_second_push_that_changes_nothing(bifrost):
    node, fake = bifrost
    customer, _, team_key, customer_key, open_key = world()
    pushed(node)
    writes = len(fake.writes)
    make_budget(scope_type="customer", scope_id=customer.pk, amount=Decimal("1"))
    charge_spend(charges=[SpendCharge(timezone.now(), Decimal("2"), customer.pk, None, None)])
    revoke_virtual_key(actor=ACTOR, key=open_key.key, now=timezone.now())
    revise_config(reason="blocked and revoked")

    pushed(node)

    assert fake.by_name(team_key.key.public_id)["is_active"] is False
    assert fake.by_name(customer_key.key.public_id)["is_active"] is False
    assert fake.by_name(open_key.key.public_id) is None
    methods = [method for method, _, _ in fake.writes[writes:]]
    assert sorted(methods) == ["DELETE", "PUT", "PUT"]
    # A team key's PUT still names its team (Bifrost detaches a key sent with neither).
    team_put = next(
        body for method, _, body in fake.writes[writes:] if method == "PUT" and body and body.get("team_id")
    )
    assert team_put["is_active"] is False
    node.applied_version = None
    node.save()
    writes = len(fake.writes)
    pushed(node)
    assert fake.writes[writes:] == []  # nothing differs: nothing written


def test_bifrost_converges_when_a_limit_is_dropped_or_models_are_opened(bifrost):
    node, fake = bifrost
    key = make_key(allowed_models=["openai/gpt-4o-mini"], requests_per_minute=60, tokens_per_minute=1000).key
    pushed(node)
    update_virtual_key(
        actor=ACTOR, key=key, changes={"requests_per_minute": None, "allowed_models": []}, now=timezone.now()
    )
    revise_config(reason="limit dropped, models opened")

    pushed(node)

    vk = fake.by_name(key.public_id)
    assert vk["rate_limit"]["request_max_limit"] is None and vk["rate_limit"]["token_max_limit"] == 1000
    assert [(c["provider"], c["allowed_models"]) for c in vk["provider_configs"]] == [("openai", ["*"])]
    assert check_drift(node_id=node.pk, now=timezone.now()) is False  # converged: nothing left to repair


def test_bifrost_governs_a_key_defined_in_its_config_json_by_name(bifrost):
    node, fake = bifrost
    key = make_key().key
    seeded = fake.seed_virtual_key(name=key.public_id, value="sk-bf-shared-value-from-config-json")

    pushed(node)

    assert fake.by_name(key.public_id)["id"] == seeded["id"]
    assert fake.by_name(key.public_id)["value"] == "sk-bf-shared-value-from-config-json"
    assert len(fake.virtual_keys) == 1


def test_bifrost_drift_is_seen_and_repaired(bifrost):
    node, fake = bifrost
    _, _, team_key, _, _ = world()
    pushed(node)
    vk = fake.by_name(team_key.key.public_id)
    vk["is_active"] = False  # someone turned it off in Bifrost's UI

    assert check_drift(node_id=node.pk, now=timezone.now()) is True

    assert fake.by_name(team_key.key.public_id)["is_active"] is True


def test_a_rejected_key_does_not_stop_the_others(bifrost):
    node, fake = bifrost
    _, _, team_key, customer_key, _ = world()
    update_virtual_key(actor=ACTOR, key=customer_key.key, changes={"requests_per_minute": 5}, now=timezone.now())
    original = fake._validate

    def refuse_one(kind, payload):
        if payload.get("name") == customer_key.key.public_id:
            return 400, {"error": {"message": "refused for the test"}}
        return original(kind, payload)

    fake._validate = refuse_one

    report = push_config()

    assert "refused for the test" in report.failed[node.pk]
    assert fake.by_name(team_key.key.public_id) is not None  # the others were applied
    node.refresh_from_db()
    assert node.applied_version is None and node.push_failures == 1


# --- LiteLLM ------------------------------------------------------------------------------


def test_litellm_keys_are_generated_from_the_bursar_secret(litellm):
    node, fake = litellm
    _, _, team_key, customer_key, _ = world()

    pushed(node)

    raw = f"sk-{team_key.secret}"
    stored = fake.keys[hashlib.sha256(raw.encode()).hexdigest()]
    assert stored["key_alias"] == team_key.key.public_id
    assert stored["models"] == ["openai/gpt-4o-mini", "anthropic/*"] and stored["rpm_limit"] == 60
    assert stored["team_id"] == "research" and stored["blocked"] is False
    assert stored["metadata"] == {"bursar_key": team_key.key.public_id, "bursar_customer": "acme"}
    assert "research" in fake.teams and "acme" in fake.customers
    generate = next(body for path, body in fake.calls if path == "/key/generate")
    assert generate["key"].startswith("sk-vk_")
    assert fake.by_alias(customer_key.key.public_id)["tpm_limit"] == 50_000


def test_litellm_block_unblock_and_revoke(litellm):
    node, fake = litellm
    customer, _, team_key, _, open_key = world()
    pushed(node)
    budget = make_budget(scope_type="customer", scope_id=customer.pk, amount=Decimal("1"))
    charge_spend(charges=[SpendCharge(timezone.now(), Decimal("2"), customer.pk, None, None)])
    revise_config(reason="blocked")
    calls = len(fake.calls)

    pushed(node)

    assert fake.by_alias(team_key.key.public_id)["blocked"] is True
    assert [path for path, _ in fake.calls[calls:]] == ["/key/block", "/key/block"]
    from governance.services.budgets import update_budget

    update_budget(actor=ACTOR, budget=budget, changes={"amount": Decimal("10")}, now=timezone.now())
    revoke_virtual_key(actor=ACTOR, key=open_key.key, now=timezone.now())
    revise_config(reason="raised, revoked")
    pushed(node)
    assert fake.by_alias(team_key.key.public_id)["blocked"] is False
    assert fake.by_alias(open_key.key.public_id) is None


def test_litellm_rotation_keeps_the_old_key_for_the_grace_window_only(litellm):
    node, fake = litellm
    issued = make_key()
    pushed(node)
    old_hash = hashlib.sha256(f"sk-{issued.secret}".encode()).hexdigest()
    key = VirtualKey.objects.get(pk=issued.key.pk)
    rotated = rotate_virtual_key(actor=ACTOR, key=key, grace=timedelta(seconds=1), now=timezone.now())
    revise_config(reason="rotated")

    pushed(node)

    new_hash = hashlib.sha256(f"sk-{rotated.secret}".encode()).hexdigest()
    assert {old_hash, new_hash} <= set(fake.keys)
    assert fake.keys[old_hash]["key_alias"] == f"{issued.key.public_id}~previous"
    # The old key was renamed, never deleted: the old secret never stopped working.
    assert not any(path == "/key/delete" for path, _ in fake.calls)
    # Once the window is over (the minute sweep notices) the old key goes.
    assert end_grace_windows(now=timezone.now() + timedelta(seconds=2)) == 1
    revise_config(reason="grace over")
    pushed(node)
    assert old_hash not in fake.keys and new_hash in fake.keys


def test_litellm_recovers_a_key_whose_alias_its_state_forgot(litellm):
    node, fake = litellm
    issued = make_key()
    pushed(node)
    GatewayNode.objects.filter(pk=node.pk).update(state={}, applied_version=None)

    pushed(node)

    assert len(fake.keys) == 1 and fake.by_alias(issued.key.public_id) is not None


def test_litellm_drift_is_seen_and_repaired(litellm):
    node, fake = litellm
    issued = make_key()
    pushed(node)
    fake.by_alias(issued.key.public_id)["blocked"] = True  # blocked by hand in LiteLLM's UI
    # The node's memory says "unblocked", so a repair must not trust it: it re-applies.
    GatewayNode.objects.filter(pk=node.pk).update(state={})

    assert check_drift(node_id=node.pk, now=timezone.now()) is True

    assert fake.by_alias(issued.key.public_id)["blocked"] is False
    assert latest_revision() is not None


def test_litellm_a_key_issued_before_provisioning_is_reported_and_the_rest_applied(litellm):
    node, fake = litellm
    old = make_key().key
    VirtualKey.objects.filter(pk=old.pk).update(secret_encrypted="")
    new = make_key()

    node = pushed(node)  # applied: one old key must not hold the whole node back

    assert fake.by_alias(new.key.public_id) is not None and fake.by_alias(old.public_id) is None
    assert old.public_id in node.drift and "rotate" in node.drift


def test_litellm_callbacks_for_a_provisioned_key_are_attributed_to_it(gateway):
    import json
    import time

    from billing.models import UsageEvent
    from ingest.models import IngestBatch
    from ingest.services import process_batch

    issued = make_key(customer=make_customer(external_id="via_litellm"))
    litellm_hash = hashlib.sha256(f"sk-{issued.secret}".encode()).hexdigest()
    payload = {
        "litellm_call_id": "call-provisioned",
        "status": "success",
        "model": "openai/gpt-4o-mini",
        "startTime": time.time() - 5,
        "endTime": time.time() - 4,
        "prompt_tokens": 100,
        "completion_tokens": 10,
        "metadata": {"user_api_key_hash": litellm_hash, "user_api_key_alias": issued.key.public_id},
    }
    response = gateway.generic("POST", "/api/v1/ingest/litellm", json.dumps([payload]), content_type="application/json")
    assert response.status_code == 202, response.content
    for batch_id in IngestBatch.objects.values_list("id", flat=True):
        process_batch(batch_id=batch_id)

    assert UsageEvent.objects.get().virtual_key_id == issued.key.pk

"""The dashboard in headless Chromium: spend pages with real plotly charts, the range
picker, CSV export, and issuing and revoking a key. With ``SCREENSHOTS_DIR`` set, the
main pages are saved there too (that is how docs/screenshots/ is made)."""

from __future__ import annotations

import json
import os
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.utils import timezone

from governance.models import VirtualKey
from ingest.models import IngestBatch
from ingest.services import process_batch
from tests.factories import make_budget, make_customer, make_key, make_team, make_user, native_event

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
PASSWORD = "correct horse battery staple"
SHOTS = os.environ.get("SCREENSHOTS_DIR", "")


def shoot(page, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=True)


@pytest.fixture
def traffic(gateway):
    customer = make_customer(external_id="acme_corp", name="Acme Corp")
    team = make_team(slug="research", name="Research", customer=customer)
    key = make_key(team=team, name="support bot", allowed_models=["openai/*"]).key
    make_budget(scope_type="customer", scope_id=customer.pk, amount=Decimal("40"), soft_thresholds=[50, 80])
    now = timezone.now()
    models = ["gpt-4o-mini", "gpt-4.1", "o4-mini"]
    events = [
        native_event(
            request_id=f"browser-{n}", customer="acme_corp", team="research", virtual_key=key.public_id,
            model=models[n % 3], cost=str(Decimal("0.35") + Decimal(n % 7) / 10),
            timestamp=(now - timedelta(hours=n * 5)).isoformat(), latency_ms=200 + (n * 37) % 900,
        )
        for n in range(120)
    ]  # fmt: skip
    gateway.generic("POST", "/api/v1/ingest/events", json.dumps(events), content_type="application/json")
    for batch_id in IngestBatch.objects.values_list("id", flat=True):
        process_batch(batch_id=batch_id)
    return customer, key


def sign_in(page, server_url: str, username: str) -> None:
    page.goto(f"{server_url}/accounts/login/")
    page.fill("#id_login", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("[data-testid=customers]")


def test_finance_browses_a_customer_chart_range_and_csv(server_url, page, traffic):
    customer, _ = traffic
    make_user("finance", username="fiona", password=PASSWORD)
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    sign_in(page, server_url, "fiona")
    page.wait_for_selector("#spend-chart .main-svg")  # the overview chart rendered
    shoot(page, "overview")

    page.click("nav >> text=Customers")
    page.click("text=Acme Corp")
    page.wait_for_selector("#spend-chart .main-svg")
    assert page.locator("#spend-chart .legendtext").count() == 3  # stacked by model
    shoot(page, "customer")
    before = page.text_content("[data-testid=scope-spend]")

    page.select_option("#range-preset", "7d")
    page.wait_for_url("**range=7d**")
    page.wait_for_selector("#spend-chart .main-svg")
    assert page.text_content("[data-testid=scope-spend]") != before  # a week holds less than 30 days
    page.select_option("#by", "provider")
    page.wait_for_url("**by=provider**")
    assert "range=7d" in page.url  # filters stay in the URL

    with page.expect_download() as download:
        page.click("[data-testid=export-csv]")
    path = download.value.path()
    lines = Path(path).read_text().splitlines()
    assert lines[0].startswith("bucket,provider,requests") and len(lines) > 1
    assert all(url.startswith(server_url) for url in requested), [u for u in requested if not u.startswith(server_url)]
    assert customer.pk


def test_admin_issues_a_key_sees_the_secret_once_and_revokes_it(server_url, page, traffic):
    make_user("admin", username="ada", password=PASSWORD)
    sign_in(page, server_url, "ada")
    page.click("nav >> text=Keys")
    shoot(page, "keys")
    page.click("text=Issue a key")
    page.fill("#name", "browser key")
    page.select_option("#team", label="research (acme_corp)")
    page.fill("#allowed_models", "openai/gpt-4o-mini")
    page.fill("#requests_per_minute", "30")
    page.click("button:has-text('Issue key')")

    secret = page.input_value("[data-testid=secret]")
    assert secret.startswith("vk_")
    shoot(page, "key-secret")
    page.click("text=Go to the key")
    assert secret not in page.content()

    page.once("dialog", lambda dialog: dialog.accept())
    page.click("[data-testid=revoke]")
    page.wait_for_selector("text=is revoked")
    assert VirtualKey.objects.get(name="browser key").status == "revoked"

    page.click("nav >> text=Budgets")
    page.wait_for_selector("text=Budget")
    shoot(page, "budgets")

import re
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import models
from rest_framework.test import APIClient

from governance.models import ApiToken, Budget, Customer, Team, VirtualKey

pytestmark = pytest.mark.django_db


def test_create_api_token_prints_the_token_alone_and_it_works():
    out = StringIO()

    call_command("create_api_token", "--name", "ci", "--role", "finance", stdout=out)

    printed = out.getvalue()
    assert re.fullmatch(r"bsr_[A-Za-z0-9_-]{43}\n", printed)
    token = ApiToken.objects.get(name="ci")
    assert token.role == "finance"
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {printed.strip()}")
    assert client.get("/api/v1/budgets/").status_code == 200


def test_create_api_token_refuses_an_unknown_role():
    with pytest.raises(CommandError):
        call_command("create_api_token", "--name", "ci", "--role", "owner")
    assert not ApiToken.objects.exists()


def test_create_api_token_scopes_a_team_lead_to_its_teams():
    from tests.factories import make_team

    team = make_team(slug="payments")
    out = StringIO()
    call_command("create_api_token", "--name", "lead", "--role", "team_lead", "--team", "payments", stdout=out)
    token = ApiToken.objects.get(name="lead")
    assert list(token.teams.all()) == [team]
    with pytest.raises(CommandError, match="needs at least one team"):
        call_command("create_api_token", "--name", "lead2", "--role", "team_lead")
    with pytest.raises(CommandError, match="'nope'"):
        call_command("create_api_token", "--name", "lead3", "--role", "team_lead", "--team", "nope")


def test_create_api_token_refuses_an_unknown_user():
    with pytest.raises(CommandError, match="no user named"):
        call_command("create_api_token", "--name", "ci", "--role", "viewer", "--user", "ghost")


def test_demo_data_loads_once_through_the_services_and_the_ingest_endpoints(settings):
    from billing.models import UsageEvent, UsageRollup
    from ingest.models import IngestBatch
    from ingest.services import process_batch

    call_command("seed_demo", "--quiet", "--days", "3", "--per-day", "200")
    # The endpoint accepted the batches; with a broker configured the worker would
    # process them, which this test does itself.
    for batch_id in IngestBatch.objects.filter(state="pending").values_list("id", flat=True):
        process_batch(batch_id=batch_id)
    assert (
        IngestBatch.objects.filter(format="litellm").exists() and IngestBatch.objects.filter(format="native").exists()
    )
    assert UsageEvent.objects.count() == IngestBatch.objects.aggregate(n=models.Sum("accepted"))["n"] > 300
    assert UsageRollup.objects.exists()
    first = (Customer.objects.count(), Team.objects.count(), VirtualKey.objects.count(), Budget.objects.count())
    call_command("seed_demo", "--quiet")

    assert first == (Customer.objects.count(), Team.objects.count(), VirtualKey.objects.count(), Budget.objects.count())
    assert first[0] >= 5 and first[2] >= 5 and first[3] >= 5
    out = StringIO()
    call_command("verify_audit", stdout=out)
    assert "audit chain intact" in out.getvalue()

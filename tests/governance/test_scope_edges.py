"""Edges of scoped access found in review: scopes whose objects are deleted, teams that
move, events naming a team of one customer and another customer, the browsable API, admin
demotion, duplicate accounts, over-long input and the audit trigger."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from django.db import DatabaseError, transaction
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from bursar.errors import Conflict, InvalidInput
from governance.models import AuditEntry, Invitation, RoleGrant
from governance.permissions import access_for, token_grant
from governance.services.organization import delete_customer, delete_team, update_team
from governance.services.users import accept_invitation, invite, pending_invitation, revoke_role
from governance.services.virtual_keys import revoke_virtual_key
from ingest.models import IngestBatch
from ingest.services import process_batch
from tests.factories import ACTOR, make_customer, make_key, make_team, make_token, make_user, native_event

pytestmark = pytest.mark.django_db


def ingest(gateway: APIClient, events: list[dict[str, Any]]) -> None:
    response = gateway.generic("POST", "/api/v1/ingest/events", json.dumps(events), content_type="application/json")
    assert response.status_code == 202, response.content
    for batch_id in IngestBatch.objects.filter(state="pending").values_list("id", flat=True):
        process_batch(batch_id=batch_id)


def bearer(secret: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def test_a_scope_whose_team_or_customer_is_deleted_sees_nothing_not_everything():
    team, customer, elsewhere = make_team(), make_customer(), make_customer()
    by_team = make_user("viewer", teams=[team])
    by_customer = make_user("viewer", customers=[customer])
    token = make_token("viewer", teams=[team]).token
    invitation = invite(actor=ACTOR, email="late@example.com", role="viewer", teams=[team], now=timezone.now())

    delete_team(actor=ACTOR, team=team)
    delete_customer(actor=ACTOR, customer=customer)

    for access in (access_for(by_team), access_for(by_customer), access_for(None, token)):
        assert access.spend.nothing and access.keys.nothing and not access.spend.everything
    assert token_grant(token) is not None and token_grant(token).scoped  # type: ignore[union-attr]
    client = Client()
    client.force_login(by_customer)
    assert elsewhere.name not in client.get("/customers/").content.decode()
    with pytest.raises(InvalidInput, match="no longer exist"):
        accept_invitation(
            invitation=invitation.invitation, now=timezone.now(), username="late", password="a long passphrase 42"
        )


def by_customer(secret: str) -> list[dict[str, Any]]:
    query = {"granularity": "total", "group_by": "customer", "start": "2026-05-01T00:00:00Z"}
    rows: list[dict[str, Any]] = bearer(secret).get("/api/v1/usage/", query).json()["results"]
    return rows


def test_a_customers_viewer_sees_that_customers_spend_only_even_through_its_teams(gateway):
    mine, theirs = make_customer(external_id="c_one"), make_customer(external_id="c_two_secret")
    team = make_team(slug="t-c1", customer=mine)
    ingest(
        gateway,
        [
            native_event(request_id="ok", customer="c_one", team="t-c1", cost="1.00"),
            # a gateway named a team of c_one and the customer c_two_secret
            native_event(request_id="odd", customer="c_two_secret", team="t-c1", cost="6.50"),
        ],
    )
    viewer = make_user("viewer", customers=[mine])
    token = make_token("viewer", customers=[mine])

    rows = by_customer(token.secret)
    assert [(row["customer"], row["cost"]) for row in rows] == [("c_one", "1")]
    client = Client()
    client.force_login(viewer)
    overview = client.get("/?start=2026-05-01&end=2026-06-30").content.decode()
    assert "c_two_secret" not in overview and "6.50" not in overview
    assert (
        "c_two_secret" not in client.get(f"/teams/{team.pk}/events/?start=2026-05-01&end=2026-06-30").content.decode()
    )

    # The team moves to the other customer: its past spend under c_one stays c_one's.
    update_team(actor=ACTOR, team=team, changes={"customer": theirs})
    other_viewer = make_token("viewer", customers=[theirs])
    rows = by_customer(other_viewer.secret)
    assert [(row["customer"], row["cost"]) for row in rows] == [("c_two_secret", "6.5")]


def test_a_moved_keys_events_before_the_move_stay_with_the_old_team(gateway):
    old, new = make_team(slug="old-team"), make_team(slug="new-team")
    key = make_key(team=old).key
    ingest(gateway, [native_event(request_id="before-move", virtual_key=key.public_id, cost="7.77")])
    from governance.services.virtual_keys import update_virtual_key

    update_virtual_key(actor=ACTOR, key=key, changes={"team": new}, now=timezone.now())
    lead = Client()
    lead.force_login(make_user("team_lead", teams=[new]))

    page = lead.get(f"/virtual_key/{key.pk}/events/?format=csv&start=2026-05-01&end=2026-06-30")
    assert page.status_code == 200 and "before-move" not in page.content.decode()
    revoke_virtual_key(actor=ACTOR, key=key, now=timezone.now())


def test_the_browsable_api_names_nothing_outside_the_scope():
    mine, theirs = make_customer(name="Mine Inc"), make_customer(name="SecretCorp")
    team = make_team(slug="mine-team", customer=mine)
    make_team(slug="secret-team", customer=theirs)
    make_key(team=team)
    client = bearer(make_token("team_lead", teams=[team]).secret)

    for path in ("/api/v1/teams/", "/api/v1/virtual-keys/", "/api/v1/budgets/", "/api/v1/alerts/", "/api/v1/usage/"):
        html = client.get(path, HTTP_ACCEPT="text/html").content.decode()
        assert "SecretCorp" not in html and "secret-team" not in html, path
    # An id outside the scope reads exactly like one that does not exist.
    assert client.get("/api/v1/teams/", {"customer": theirs.pk}).json()["count"] == 0
    assert client.get("/api/v1/teams/", {"customer": 10**9}).json()["count"] == 0
    assert client.get("/api/v1/virtual-keys/", {"team": 10**9}).status_code == 200


def test_revoking_the_admin_role_demotes_the_user_for_good():
    now = timezone.now()
    invited = invite(actor=ACTOR, email="boss@example.com", role="admin", now=now)
    user = accept_invitation(invitation=invited.invitation, now=now, username="boss", password="a long passphrase 42")
    assert user.is_superuser and user.is_staff and access_for(user).is_admin
    make_user("admin")  # another admin remains

    revoke_role(actor=ACTOR, grant=RoleGrant.objects.get(user_id=user.pk, role="admin"))

    fresh = type(user).objects.get(pk=user.pk)  # as the next request loads it
    assert not (fresh.is_superuser or fresh.is_staff)
    assert access_for(fresh).roles == frozenset()


def test_one_email_gets_one_account():
    now = timezone.now()
    first = invite(actor=ACTOR, email="dup@example.com", role="viewer", now=now)
    second = invite(actor=ACTOR, email="DUP@example.com", role="admin", now=now)  # supersedes the first
    assert first.invitation.state(now) == "pending"
    first.invitation.refresh_from_db()
    assert first.invitation.state(now) == "revoked"
    assert pending_invitation(secret=first.secret, now=now) is None

    accept_invitation(invitation=second.invitation, now=now, username="dup", password="a long passphrase 42")
    stale = Invitation.objects.create(email="dup@example.com", role="admin", token_sha256="0" * 64,
                                      expires_at=now + timedelta(days=1))  # fmt: skip
    with pytest.raises(Conflict, match="already has an account"):
        accept_invitation(invitation=stale, now=now, username="dup2", password="a long passphrase 42")


def test_over_long_input_is_a_400_not_a_500():
    admin = bearer(make_token("admin").secret)
    long_email = "a" * 250 + "@example.com"
    assert admin.post("/api/v1/invitations/", {"email": long_email, "role": "viewer"}, format="json").status_code == 400
    assert admin.post("/api/v1/api-tokens/", {"name": "n" * 300, "role": "viewer"}, format="json").status_code == 400
    page = Client()
    page.force_login(make_user("admin"))
    assert page.post("/users/", {"action": "invite", "email": long_email, "role": "viewer"}).status_code == 400
    assert page.post("/tokens/", {"name": "n" * 300, "role": "viewer"}).status_code == 400


def test_the_audit_trigger_lets_actor_links_be_cleared_but_not_repointed():
    user, other = make_user("viewer"), make_user("viewer")
    entry = AuditEntry.objects.filter(actor_user__isnull=True).first()
    assert entry is not None
    with pytest.raises(DatabaseError, match="keeps its actor"), transaction.atomic():
        AuditEntry.objects.filter(pk=entry.pk).update(actor_user=other)
    AuditEntry.objects.filter(actor_user=user).update(actor_user=None)  # what deleting a user does
    assert user.pk


def test_the_last_active_admin_cannot_be_demoted_or_deactivated_by_anyone():
    from governance.services.users import set_user_active

    only = make_user("admin")
    with pytest.raises(Conflict, match="no active admin"):
        revoke_role(actor=ACTOR, grant=RoleGrant.objects.get(user_id=only.pk, role="admin"))
    with pytest.raises(Conflict, match="no active admin"):
        set_user_active(actor=ACTOR, user=only, active=False)
    second = make_user("admin")
    revoke_role(actor=ACTOR, grant=RoleGrant.objects.get(user_id=only.pk, role="admin"))  # one is left
    api = bearer(make_token("admin", user=second).secret)
    assert api.delete(f"/api/v1/users/{second.pk}/grants/admin/").status_code == 400  # not yourself
    assert RoleGrant.objects.filter(user_id=second.pk, role="admin").exists()


def test_a_token_of_a_customers_viewer_cannot_name_that_customers_teams(gateway):
    mine, theirs = make_customer(external_id="c_one"), make_customer(external_id="c_two_secret")
    make_team(slug="t-c1", customer=mine)
    team = make_team(slug="t-c1b", customer=mine)
    ingest(gateway, [native_event(request_id="odd", customer="c_two_secret", team="t-c1b", cost="6.50")])
    owner = make_user("viewer", customers=[mine])
    with pytest.raises(InvalidInput, match="limited to fewer"):
        make_token("viewer", user=owner, teams=[team])
    assert theirs.pk


def test_deleting_a_user_with_two_factor_works_and_keeps_the_log():
    from allauth.mfa.totp.internal.auth import TOTP

    user = make_user("viewer")
    TOTP.activate(user, "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP")
    with transaction.atomic():
        type(user).objects.get(pk=user.pk).delete()
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # what the commit would check
    assert AuditEntry.objects.filter(action="mfa.enable").exists()


def test_re_granting_a_scope_that_lost_its_objects_is_audited():
    team = make_team()
    user = make_user("viewer", teams=[team])
    delete_team(actor=ACTOR, team=team)
    from governance.services.users import set_grant

    set_grant(actor=ACTOR, user=user, role="viewer")  # now organisation-wide: a real change
    entry = AuditEntry.objects.filter(action="role.change").latest("id")
    assert entry.before is not None and entry.after is not None
    assert (entry.before["scoped"], entry.after["scoped"]) == (True, False)

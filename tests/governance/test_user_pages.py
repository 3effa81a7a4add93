"""The users, invitations and API token pages, and the public invitation page."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import TYPE_CHECKING

import pytest
from allauth.mfa.models import Authenticator
from allauth.socialaccount.models import SocialAccount
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from governance.models import ApiToken, AuditEntry, Invitation, RoleGrant
from governance.services import users as user_services
from tests.factories import ACTOR, make_customer, make_team, make_user

if TYPE_CHECKING:
    from django.test.client import _MonkeyPatchedWSGIResponse as Response

pytestmark = pytest.mark.django_db

PASSWORD = "violet tambourine 4 harbour"
OIDC_APP = {
    "provider_id": "test-sso",
    "name": "Test SSO",
    "client_id": "bursar",
    "secret": "not-used",
    "settings": {"server_url": "http://127.0.0.1:9/o"},
}


@pytest.fixture
def admin() -> User:
    return make_user("admin")


@pytest.fixture
def admin_client(admin: User) -> Client:
    client = Client()
    client.force_login(admin)
    return client


def audit_text() -> str:
    """Everything the audit log says, as one searchable text."""
    entries = AuditEntry.objects.order_by("id")
    return "\n".join(json.dumps([e.actor, e.object_repr, e.before, e.after], default=str) for e in entries)


def invite(client: Client, **fields: object) -> tuple[str, str]:
    """Invite through the page; the link and its secret."""
    response = client.post("/users/", {"action": "invite", **fields})
    assert response.status_code == 200, response.content.decode()
    link = response.context["link"]
    return link, link.rstrip("/").rsplit("/", 1)[1]


def accept(client: Client, secret: str, username: str = "newcomer", again: str = PASSWORD) -> Response:
    return client.post(f"/invitations/{secret}/", {"username": username, "password1": PASSWORD, "password2": again})


# --- invitations ---------------------------------------------------------------------------


def test_an_invited_person_accepts_with_a_password_and_holds_the_role(
    admin_client, mailoutbox, django_capture_on_commit_callbacks
):
    payments, search = make_team(slug="payments"), make_team(slug="search")
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            "/users/",
            {"action": "invite", "email": "Lead@Example.com", "role": "team_lead", "teams": [payments.pk, search.pk]},
        )

    assert response.status_code == 200
    link = response.context["link"]
    secret = link.rstrip("/").rsplit("/", 1)[1]
    assert link == f"http://testserver/invitations/{secret}/"
    assert f'value="{link}"' in response.content.decode()  # shown with a copy button
    assert "no-store" in response["Cache-Control"]
    assert len(mailoutbox) == 1 and link in mailoutbox[0].body and mailoutbox[0].to == ["Lead@example.com"]
    # Shown once: the users page lists the invitation but never its link again.
    listing = admin_client.get("/users/").content.decode()
    assert "Lead@example.com" in listing and "team_lead: teams payments, search" in listing
    assert secret not in listing
    assert secret not in audit_text()

    visitor = Client()
    page = visitor.get(f"/invitations/{secret}/")
    assert page.status_code == 200
    assert "team_lead: teams payments, search" in page.content.decode()
    assert 'name="password1"' in page.content.decode()

    response = accept(visitor, secret, username="newlead")

    assert response.status_code == 302 and response["Location"] == "/"
    user = User.objects.get(username="newlead")
    assert user.email == "Lead@example.com" and user.check_password(PASSWORD)
    assert int(visitor.session["_auth_user_id"]) == user.pk
    assert visitor.get("/").status_code == 200
    grant = RoleGrant.objects.get(user=user)
    assert grant.role == "team_lead"
    assert set(grant.teams.all()) == {payments, search} and not grant.customers.exists()
    invitation = Invitation.objects.get()
    assert invitation.accepted_at is not None and invitation.accepted_by == user
    actions = set(AuditEntry.objects.values_list("action", flat=True))
    assert {"invitation.create", "user.create", "role.grant", "invitation.accept"} <= actions
    text = audit_text()
    assert secret not in text and PASSWORD not in text
    assert invitation.token_sha256 not in text

    # The link worked once.
    reused = Client().get(f"/invitations/{secret}/")
    assert reused.status_code == 404
    assert "invalid, used, revoked or expired" in reused.content.decode()
    assert accept(Client(), secret, username="second").status_code == 404
    assert not User.objects.filter(username="second").exists()


def test_a_viewer_invitation_scoped_to_customers_reads_as_names(admin_client):
    acme = make_customer(name="Acme")
    _, secret = invite(admin_client, email="v@example.com", role="viewer", customers=[acme.pk])
    assert "viewer: customers Acme" in Client().get(f"/invitations/{secret}/").content.decode()
    assert "viewer: customers Acme" in admin_client.get("/users/").content.decode()


def test_mismatched_or_weak_passwords_are_refused_and_the_link_still_works(admin_client):
    _, secret = invite(admin_client, email="p@example.com", role="viewer")
    visitor = Client()

    mismatch = accept(visitor, secret, again=PASSWORD + "x")
    assert mismatch.status_code == 400 and "the two passwords differ" in mismatch.content.decode()
    weak = visitor.post(f"/invitations/{secret}/", {"username": "p", "password1": "123", "password2": "123"})
    assert weak.status_code == 400 and "too short" in weak.content.decode()
    bad_name = accept(visitor, secret, username="no spaces allowed")
    assert bad_name.status_code == 400

    assert not User.objects.filter(email="p@example.com").exists()
    assert "_auth_user_id" not in visitor.session
    assert Invitation.objects.get().state(timezone.now()) == "pending"
    assert accept(visitor, secret).status_code == 302


def test_a_taken_username_is_refused(admin_client, admin):
    _, secret = invite(admin_client, email="t@example.com", role="viewer")
    response = accept(Client(), secret, username=admin.username)
    assert response.status_code == 400 and "already exists" in response.content.decode()
    assert Invitation.objects.get().accepted_at is None


def test_expired_and_revoked_links_are_not_found(admin_client, admin):
    expired = user_services.invite(
        actor=ACTOR, email="old@example.com", role="viewer", now=timezone.now() - timedelta(days=8)
    )
    assert Client().get(f"/invitations/{expired.secret}/").status_code == 404
    assert accept(Client(), expired.secret).status_code == 404

    _, secret = invite(admin_client, email="gone@example.com", role="viewer")
    pending = Invitation.objects.get(email="gone@example.com")
    response = admin_client.post("/users/", {"action": "revoke_invitation", "invitation": pending.pk})
    assert response.status_code == 302
    pending.refresh_from_db()
    assert pending.revoked_at is not None
    assert AuditEntry.objects.filter(action="invitation.revoke", actor=f"user:{admin.username}").exists()
    assert Client().get(f"/invitations/{secret}/").status_code == 404
    assert Client().get("/invitations/inv_nonsense/").status_code == 404
    assert not User.objects.filter(email__in=["old@example.com", "gone@example.com"]).exists()


def test_inviting_outside_the_allowed_domains_is_refused(admin_client, settings):
    settings.ALLOWED_EMAIL_DOMAINS = ["example.com"]
    audited = AuditEntry.objects.count()

    response = admin_client.post("/users/", {"action": "invite", "email": "x@elsewhere.test", "role": "viewer"})

    assert response.status_code == 400
    assert "not an allowed email domain" in response.content.decode()
    assert 'value="x@elsewhere.test"' in response.content.decode()  # the form keeps what was typed
    assert not Invitation.objects.exists()
    assert AuditEntry.objects.count() == audited


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"email": "a@example.com", "role": "team_lead"}, "needs at least one team"),
        ({"email": "a@example.com", "role": "finance", "customers": "ACME"}, "takes no customers"),
        ({"email": "a@example.com", "role": "viewer", "teams": ["999999"]}, "no team with id"),
        ({"email": "a@example.com", "role": "boss"}, "is not a role"),
        ({"email": "nobody", "role": "viewer"}, "must be an email address"),
    ],
)
def test_invalid_invitations_are_refused(admin_client, fields, message):
    acme = make_customer()
    if fields.get("customers") == "ACME":
        fields = {**fields, "customers": [acme.pk]}
    response = admin_client.post("/users/", {"action": "invite", **fields})
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not Invitation.objects.exists()


def test_sso_only_hides_the_password_form(admin_client, settings):
    settings.SSO_ONLY = True
    settings.SOCIALACCOUNT_PROVIDERS = {"openid_connect": {"APPS": [OIDC_APP]}}
    _, secret = invite(admin_client, email="sso@example.com", role="viewer")

    page = Client().get(f"/invitations/{secret}/")

    body = page.content.decode()
    assert page.status_code == 200
    assert 'name="password1"' not in body
    assert 'action="/accounts/oidc/test-sso/login/' in body and "Test SSO" in body
    assert "must be the invited address" in body
    refused = accept(Client(), secret)
    assert refused.status_code == 400
    assert not User.objects.filter(email="sso@example.com").exists()


def test_the_invitation_page_offers_sso_beside_a_password(admin_client, settings):
    settings.SOCIALACCOUNT_PROVIDERS = {"openid_connect": {"APPS": [OIDC_APP]}}
    _, secret = invite(admin_client, email="both@example.com", role="viewer")
    body = Client().get(f"/invitations/{secret}/").content.decode()
    assert 'name="password1"' in body
    assert "Or sign in with Test SSO" in body


# --- who may open the pages ----------------------------------------------------------------


@pytest.mark.parametrize("role", ["finance", "viewer", "team_lead"])
def test_other_roles_are_refused_and_change_nothing(role):
    team = make_team()
    someone = make_user("viewer")
    user = make_user(role, teams=[team]) if role == "team_lead" else make_user(role)
    client = Client()
    client.force_login(user)
    audited = AuditEntry.objects.count()

    for url in ("/users/", f"/users/{someone.pk}/", "/tokens/", "/users/?format=csv"):
        assert client.get(url).status_code == 403, url
    posts = [
        ("/users/", {"action": "invite", "email": "e@example.com", "role": "admin"}),
        (f"/users/{someone.pk}/", {"action": "grant", "role": "admin"}),
        (f"/users/{someone.pk}/", {"action": "deactivate"}),
        ("/tokens/", {"action": "create", "name": "sneaky", "role": "admin"}),
    ]
    for url, data in posts:
        assert client.post(url, data).status_code == 403, url

    assert not Invitation.objects.exists()
    assert not ApiToken.objects.filter(name="sneaky").exists()
    someone.refresh_from_db()
    assert someone.is_active and list(someone.role_grants.values_list("role", flat=True)) == ["viewer"]
    assert AuditEntry.objects.count() == audited


def test_signed_out_visitors_are_sent_to_sign_in():
    for url in ("/users/", "/tokens/", "/users/1/"):
        response = Client().get(url)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


# --- the users list ------------------------------------------------------------------------


def test_users_list_shows_roles_mfa_and_sso_and_exports_csv(admin_client):
    payments = make_team(slug="payments")
    lead = make_user("team_lead", teams=[payments], username="lena")
    Authenticator.objects.create(user=lead, type=Authenticator.Type.TOTP, data={})
    SocialAccount.objects.create(user=lead, provider="github", uid="42")
    plain = make_user("finance", username="fred")
    Authenticator.objects.create(user=plain, type=Authenticator.Type.RECOVERY_CODES, data={})

    page = admin_client.get("/users/")

    body = page.content.decode()
    assert page.status_code == 200
    row = body.split(f'data-testid="user-{lead.pk}"')[1].split("</tr>")[0]
    assert "team_lead: teams payments" in row and "github" in row and 'badge ok">on' in row
    fred = body.split(f'data-testid="user-{plain.pk}"')[1].split("</tr>")[0]
    assert "finance" in fred and 'hint">off' in fred  # recovery codes alone are no second factor

    export = admin_client.get("/users/?format=csv")
    assert export["Content-Type"].startswith("text/csv")
    lines = export.content.decode().splitlines()
    assert lines[0] == "id,username,email,active,roles,last_login,date_joined,mfa,sso"
    assert any(line.startswith(f"{lead.pk},lena,") and "team_lead: teams payments" in line for line in lines)
    assert any(line.startswith(f"{lead.pk},") and line.endswith(",True,github") for line in lines)


# --- one user: grants and deactivation -----------------------------------------------------


def test_grant_change_revoke_and_deactivate_through_the_user_page(admin_client, admin):
    acme, payments = make_customer(name="Acme"), make_team(slug="payments")
    person = make_user("finance")
    url = f"/users/{person.pk}/"
    assert admin_client.get(url).status_code == 200

    response = admin_client.post(url, {"action": "grant", "role": "viewer", "customers": [acme.pk]})
    assert response.status_code == 302 and response["Location"] == url
    grant = RoleGrant.objects.get(user=person, role="viewer")
    assert list(grant.customers.all()) == [acme]
    assert "viewer: customers Acme" in admin_client.get(url).content.decode()

    admin_client.post(url, {"action": "grant", "role": "viewer", "teams": [payments.pk]})
    grant.refresh_from_db()
    assert list(grant.teams.all()) == [payments] and not grant.customers.exists()

    refused = admin_client.post(url, {"action": "grant", "role": "team_lead"})
    assert refused.status_code == 400 and "needs at least one team" in refused.content.decode()
    assert not RoleGrant.objects.filter(user=person, role="team_lead").exists()

    finance = RoleGrant.objects.get(user=person, role="finance")
    assert admin_client.post(url, {"action": "revoke", "grant": finance.pk}).status_code == 302
    assert list(person.role_grants.values_list("role", flat=True)) == ["viewer"]

    assert admin_client.post(url, {"action": "deactivate"}).status_code == 302
    person.refresh_from_db()
    assert not person.is_active
    assert 'data-testid="deactivated"' in admin_client.get(url).content.decode()
    admin_client.post(url, {"action": "reactivate"})
    person.refresh_from_db()
    assert person.is_active

    by_admin = AuditEntry.objects.filter(actor=f"user:{admin.username}", via="ui")
    assert list(by_admin.order_by("id").values_list("action", flat=True)) == [
        "role.grant",
        "role.change",
        "role.revoke",
        "user.deactivate",
        "user.reactivate",
    ]


def test_a_grant_of_another_user_cannot_be_revoked_through_this_page(admin_client):
    person, other = make_user("viewer"), make_user("finance")
    foreign = RoleGrant.objects.get(user=other)
    response = admin_client.post(f"/users/{person.pk}/", {"action": "revoke", "grant": foreign.pk})
    assert response.status_code == 404
    assert RoleGrant.objects.filter(pk=foreign.pk).exists()


def test_admins_cannot_lock_themselves_out(admin_client, admin):
    own = RoleGrant.objects.get(user=admin, role="admin")
    make_user("admin")  # even with another admin left, not through their own hands
    url = f"/users/{admin.pk}/"
    assert admin_client.post(url, {"action": "deactivate"}).status_code == 400
    assert admin_client.post(url, {"action": "revoke", "grant": own.pk}).status_code == 400
    admin.refresh_from_db()
    assert admin.is_active and admin.is_superuser and RoleGrant.objects.filter(pk=own.pk).exists()


def test_unknown_users_and_actions(admin_client):
    assert admin_client.get("/users/999999/").status_code == 404
    person = make_user("viewer")
    assert admin_client.post(f"/users/{person.pk}/", {"action": "explode"}).status_code == 400
    assert admin_client.post("/users/", {"action": "explode"}).status_code == 400


# --- API tokens ----------------------------------------------------------------------------


def test_a_token_is_shown_once_and_its_last_use_is_recorded(admin_client, admin):
    acme = make_customer(name="Acme")
    response = admin_client.post("/tokens/", {"action": "create", "name": "exporter", "role": "viewer"})

    assert response.status_code == 200
    secret = response.context["secret"]
    assert secret.startswith("bsr_") and f'value="{secret}"' in response.content.decode()
    assert "no-store" in response["Cache-Control"]
    token = ApiToken.objects.get(name="exporter")
    assert token.user is None and token.role == "viewer"
    assert secret not in audit_text()
    listing = admin_client.get("/tokens/").content.decode()
    assert secret not in listing and token.prefix in listing and "service" in listing
    assert f'data-testid="last-used-{token.pk}">never<' in listing

    api = Client(HTTP_AUTHORIZATION=f"Bearer {secret}")
    answer = api.get("/api/v1/customers/")
    assert answer.status_code == 200
    assert acme.external_id in answer.content.decode()

    token.refresh_from_db()
    assert token.last_used_at is not None
    listing = admin_client.get("/tokens/").content.decode()
    assert f'data-testid="last-used-{token.pk}">{token.last_used_at:%Y-%m-%d %H:%M}<' in listing

    revoked = admin_client.post("/tokens/", {"action": "revoke", "token": token.pk})
    assert revoked.status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert api.get("/api/v1/customers/").status_code in (401, 403)
    actions = list(AuditEntry.objects.filter(object_type__icontains="token").values_list("action", flat=True))
    assert "api_token.create" in actions and "api_token.revoke" in actions


def test_a_token_owned_by_me_with_a_scope_and_expiry(admin_client, admin):
    payments = make_team(slug="payments")
    response = admin_client.post(
        "/tokens/",
        {
            "action": "create",
            "name": "mine",
            "role": "admin",
            "owner_me": "on",
            "expires_at": "2099-01-31T12:00",
        },
    )
    assert response.status_code == 200
    token = ApiToken.objects.get(name="mine")
    assert token.user == admin
    assert token.expires_at is not None and token.expires_at.isoformat() == "2099-01-31T12:00:00+00:00"

    scoped = admin_client.post(
        "/tokens/", {"action": "create", "name": "leads", "role": "team_lead", "teams": [payments.pk]}
    )
    assert scoped.status_code == 200
    leads = ApiToken.objects.get(name="leads")
    listing = admin_client.get("/tokens/").content.decode()
    row = listing.split(f'data-testid="token-{leads.pk}"')[1].split("</tr>")[0]
    assert "team_lead" in row and "teams payments" in row and "service" in row


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"name": "", "role": "viewer"}, "must not be blank"),
        ({"name": "late", "role": "viewer", "expires_at": "2001-01-01T00:00"}, "must be in the future"),
        ({"name": "odd", "role": "viewer", "expires_at": "tomorrow"}, "a date and time"),
        ({"name": "lead", "role": "team_lead"}, "needs at least one team"),
        ({"name": "mine", "role": "finance", "owner_me": "on"}, "a token cannot exceed its owner"),
    ],
)
def test_invalid_tokens_are_refused(admin_client, fields, message):
    response = admin_client.post("/tokens/", {"action": "create", **fields})
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not ApiToken.objects.exists()

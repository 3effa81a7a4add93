"""Single sign-on through a real OpenID Connect provider, in a real browser.

The provider (``tests/oidc_provider``: django-oauth-toolkit, RS256 ID tokens, PKCE) runs
as its own process on loopback; Bursar's allauth ``openid_connect`` provider is pointed
at its issuer. Nothing is mocked: discovery, the authorization redirect, the provider's
login form, the code exchange and the ID token check all happen over HTTP.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from allauth.socialaccount.models import SocialAccount
from django.contrib.auth.models import User
from django.utils import timezone

from governance.actors import Actor
from governance.models import AuditEntry, Invitation, Role
from governance.services import users as user_services
from tests.factories import make_team, make_user
from tests.oidc_harness import OidcProvider, run_oidc_provider

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PROVIDER_ID = "test-sso"
IDP_PASSWORD = "provider password 42"
ADMIN = Actor(label="user:admin", via="ui")


@pytest.fixture
def idp(server_url: str, settings: Any, request: pytest.FixtureRequest) -> Iterator[OidcProvider]:
    email = getattr(request, "param", "ada@example.com")
    callback = f"{server_url}/accounts/oidc/{PROVIDER_ID}/login/callback/"
    with run_oidc_provider(redirect_uri=callback, email=email, username="ada", password=IDP_PASSWORD) as provider:
        settings.SOCIALACCOUNT_PROVIDERS = {"openid_connect": {"APPS": [provider.allauth_app(PROVIDER_ID)]}}
        yield provider


def sign_in_with_sso(page: Any, server_url: str, idp: OidcProvider) -> None:
    page.goto(f"{server_url}/accounts/login/")
    page.click(f"[data-testid=sso-{PROVIDER_ID}]")
    page.wait_for_url(f"{idp.issuer.rsplit('/o', 1)[0]}/**")  # the provider's own login page
    page.fill("input[name=username]", idp.username)
    page.fill("input[name=password]", idp.password)
    page.click("#provider-login")


def test_an_invited_email_signs_in_through_the_oidc_provider_and_takes_its_role(server_url, page, idp):
    team = make_team()
    user_services.invite(actor=ADMIN, email="Ada@Example.com", role=Role.TEAM_LEAD, teams=[team], now=timezone.now())

    sign_in_with_sso(page, server_url, idp)

    page.wait_for_url(f"{server_url}/")
    assert "team_lead" in page.text_content(".who")
    user = User.objects.get(email__iexact="ada@example.com")
    grant = user.role_grants.get()
    assert (grant.role, list(grant.teams.all())) == (Role.TEAM_LEAD, [team])
    assert SocialAccount.objects.get(user=user).provider == PROVIDER_ID
    assert Invitation.objects.get().accepted_by == user
    actions = set(AuditEntry.objects.values_list("action", flat=True))
    assert {"invitation.create", "user.create", "role.grant", "invitation.accept"} <= actions
    assert not user.has_usable_password(), "an SSO user has no password to steal"


def test_an_existing_user_with_that_email_is_linked_not_duplicated(server_url, page, idp):
    existing = make_user("finance", username="ada-local", email="ada@example.com")

    sign_in_with_sso(page, server_url, idp)

    page.wait_for_url(f"{server_url}/")
    assert "ada-local" in page.text_content(".who")
    assert User.objects.filter(email__iexact="ada@example.com").count() == 1
    assert SocialAccount.objects.get().user == existing
    assert AuditEntry.objects.filter(action="user.sso_link", object_id=str(existing.pk)).exists()


def test_an_uninvited_email_is_refused_with_a_page_that_says_why(server_url, page, idp):
    sign_in_with_sso(page, server_url, idp)

    refused = page.wait_for_selector("[data-testid=sso-refused]")
    assert "not been invited" in refused.text_content()
    assert "ada@example.com" in refused.text_content()
    assert not User.objects.exists()
    assert not SocialAccount.objects.exists()


def test_auto_provisioning_makes_an_uninvited_sso_user_a_viewer(server_url, page, idp, settings):
    settings.SSO_AUTO_PROVISION_VIEWERS = True

    sign_in_with_sso(page, server_url, idp)

    page.wait_for_url(f"{server_url}/")
    user = User.objects.get(email__iexact="ada@example.com")
    grant = user.role_grants.get()
    assert (grant.role, grant.customers.count(), grant.teams.count()) == (Role.VIEWER, 0, 0)


def test_a_domain_outside_the_allowed_list_is_refused_even_when_invited(server_url, page, idp, settings):
    user_services.invite(actor=ADMIN, email="ada@example.com", role=Role.VIEWER, now=timezone.now())
    settings.ALLOWED_EMAIL_DOMAINS = ["bursar.example"]

    sign_in_with_sso(page, server_url, idp)

    refused = page.wait_for_selector("[data-testid=sso-refused]")
    assert "example.com" in refused.text_content()
    assert not User.objects.exists()


def test_an_expired_invitation_does_not_let_the_sso_user_in(server_url, page, idp):
    user_services.invite(actor=ADMIN, email="ada@example.com", role=Role.VIEWER, now=timezone.now())
    Invitation.objects.update(expires_at=timezone.now() - timedelta(seconds=1))

    sign_in_with_sso(page, server_url, idp)

    page.wait_for_selector("[data-testid=sso-refused]")
    assert not User.objects.exists()


def test_sso_only_mode_shows_no_password_form_and_refuses_password_sign_in(server_url, page, idp, settings):
    make_user("admin", username="root", password="correct horse battery staple")

    def post_password() -> int:
        page.goto(f"{server_url}/accounts/login/")
        token = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
        response = page.request.post(
            f"{server_url}/accounts/login/",
            form={"login": "root", "password": "correct horse battery staple"},
            headers={"Referer": f"{server_url}/accounts/login/", "X-CSRFToken": token},
            max_redirects=0,
        )
        page.context.clear_cookies()
        return int(response.status)

    assert post_password() == 302, "with passwords allowed, the same request signs in"
    settings.SSO_ONLY = True
    settings.SOCIALACCOUNT_ONLY = True

    page.goto(f"{server_url}/accounts/login/")
    assert page.query_selector(f"[data-testid=sso-{PROVIDER_ID}]") is not None
    assert page.query_selector("#id_password") is None
    assert post_password() == 403

"""Sign-in hardening: TOTP two-factor for local accounts, failed-sign-in limits, session
cookies."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import (
    SECRET_SESSION_KEY,
    TOTP,
    format_hotp_value,
    hotp_value,
    yield_hotp_counters_from_time,
)
from django.core.cache import cache
from django.test import Client

from governance.models import AuditEntry
from tests.factories import make_user

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple"


@pytest.fixture(autouse=True)
def _fresh_limits() -> Iterator[None]:
    cache.clear()  # rate limits live in the cache
    yield
    cache.clear()


def current_code(secret: str) -> str:
    return str(format_hotp_value(hotp_value(secret, next(yield_hotp_counters_from_time()))))


def sign_in(client: Client, login: str, password: str = PASSWORD) -> Any:
    return client.post("/accounts/login/", {"login": login, "password": password})


def test_a_user_turns_on_totp_and_then_needs_the_code_to_sign_in():
    user = make_user("viewer", username="tess", password=PASSWORD)
    client = Client()
    sign_in(client, "tess")
    asked = client.get("/accounts/2fa/totp/activate/")
    assert asked["Location"].startswith("/accounts/reauthenticate/"), "a change of sign-in asks for the password again"
    assert client.post(asked["Location"], {"password": PASSWORD}).status_code == 302
    page = client.get("/accounts/2fa/totp/activate/")
    assert page.status_code == 200
    secret = client.session[SECRET_SESSION_KEY]
    activated = client.post("/accounts/2fa/totp/activate/", {"code": current_code(secret)})
    assert activated.status_code == 302
    assert Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).exists()
    entry = AuditEntry.objects.get(action="mfa.enable", after__type="totp")
    assert (entry.object_id, entry.actor_user_id, entry.ip) == (str(user.pk), user.pk, "127.0.0.1")
    assert secret not in str(list(AuditEntry.objects.values()))

    fresh = Client()
    response = sign_in(fresh, "tess")
    assert response["Location"].startswith("/accounts/2fa/authenticate/")
    assert fresh.get("/").status_code == 302, "the password alone does not sign in"
    assert fresh.post("/accounts/2fa/authenticate/", {"code": "000000"}).status_code == 200  # refused, asked again
    assert fresh.get("/").status_code == 302
    done = fresh.post("/accounts/2fa/authenticate/", {"code": current_code(secret)})
    assert done.status_code == 302
    assert fresh.get("/").status_code == 200


def test_a_totp_code_cannot_be_used_twice():
    user = make_user("viewer", username="reuse", password=PASSWORD)
    secret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
    TOTP.activate(user, secret)
    first, second = Client(), Client()
    sign_in(first, "reuse")
    assert first.post("/accounts/2fa/authenticate/", {"code": current_code(secret)}).status_code == 302
    sign_in(second, "reuse")
    assert second.post("/accounts/2fa/authenticate/", {"code": current_code(secret)}).status_code == 200
    assert second.get("/").status_code == 302


TOO_MANY = b"Too many failed login attempts"


def test_failed_sign_ins_are_limited_per_account_even_from_many_addresses():
    make_user("viewer", username="target", password=PASSWORD)
    for n in range(5):
        attacker = Client(REMOTE_ADDR=f"203.0.113.{n}")
        refused = sign_in(attacker, "target", "wrong password")
        assert refused.status_code == 200 and TOO_MANY not in refused.content
    owner = Client(REMOTE_ADDR="203.0.113.99")
    blocked = sign_in(owner, "target")  # even the right password, for a while
    assert TOO_MANY in blocked.content
    assert owner.get("/").status_code == 302


def test_failed_sign_ins_are_limited_per_address():
    for n in range(11):
        make_user("viewer", username=f"spray{n}", password=PASSWORD)
    attacker = Client(REMOTE_ADDR="198.51.100.7")
    for n in range(10):
        assert TOO_MANY not in sign_in(attacker, f"spray{n}", "Winter2026!").content
    assert TOO_MANY in sign_in(attacker, "spray10").content
    assert sign_in(Client(REMOTE_ADDR="198.51.100.8"), "spray10").status_code == 302  # another address is fine


def test_production_settings_keep_cookies_secure_and_sessions_short():
    from django.conf import settings

    assert settings.SESSION_COOKIE_HTTPONLY
    assert settings.SESSION_COOKIE_SAMESITE == "Lax"
    assert settings.SESSION_COOKIE_AGE <= 12 * 3600


def test_google_and_github_switch_on_from_their_client_settings_and_send_people_there(settings):
    """The providers themselves are on the internet, which tests never reach: this checks
    the wiring up to the redirect (the OpenID Connect test goes all the way, on loopback)."""
    client = Client()
    assert b"Sign in with" not in client.get("/accounts/login/").content
    settings.SOCIALACCOUNT_PROVIDERS = {
        "google": {"APPS": [{"client_id": "google-client", "secret": "s"}], "SCOPE": ["openid", "email", "profile"],
                   "OAUTH_PKCE_ENABLED": True},
        "github": {"APPS": [{"client_id": "github-client", "secret": "s"}], "SCOPE": ["read:user", "user:email"]},
    }  # fmt: skip

    page = client.get("/accounts/login/").content.decode()
    assert "Sign in with Google" in page and "Sign in with GitHub" in page
    google = client.post("/accounts/google/login/")
    assert google.status_code == 302
    assert google["Location"].startswith("https://accounts.google.com/o/oauth2/v2/auth?")
    assert "client_id=google-client" in google["Location"] and "code_challenge=" in google["Location"]
    github = client.post("/accounts/github/login/")
    assert github["Location"].startswith("https://github.com/login/oauth/authorize?")
    assert "client_id=github-client" in github["Location"]

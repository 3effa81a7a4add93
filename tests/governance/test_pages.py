import pytest
from django.test import Client

from tests.factories import make_customer, make_user

pytestmark = pytest.mark.django_db


def test_dashboard_requires_sign_in():
    response = Client().get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_signed_in_user_sees_the_overview_counts():
    make_customer()
    client = Client()
    client.force_login(make_user("finance"))

    response = client.get("/")

    assert response.status_code == 200
    assert b'data-testid="customers">1<' in response.content


def test_user_without_a_role_is_refused():
    from django.contrib.auth.models import User

    client = Client()
    client.force_login(User.objects.create_user(username="nobody", password="x" * 12))
    assert client.get("/").status_code == 403


def test_open_sign_up_is_closed():
    response = Client().get("/accounts/signup/")
    assert b"Sign Up Closed" in response.content or response.status_code in (403, 404)


def test_session_auth_works_on_the_api():
    client = Client()
    client.force_login(make_user("viewer"))
    assert client.get("/api/v1/customers/").status_code == 200
    assert client.post("/api/v1/customers/", {"external_id": "x", "name": "x"}).status_code == 403


def test_health_endpoint_answers_without_auth():
    assert Client().get("/healthz").json() == {"status": "ok"}

"""Signing in to the dashboard shell in a real browser."""

import pytest

from tests.factories import make_customer, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct horse battery staple"


def test_user_signs_in_sees_the_overview_and_signs_out(server_url, page):
    make_customer()
    make_customer()
    make_user("admin", username="ada", password=PASSWORD)

    page.goto(f"{server_url}/")
    assert "/accounts/login/" in page.url

    page.fill("#id_login", "ada")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")

    page.wait_for_selector("[data-testid=customers]")
    assert page.text_content("[data-testid=customers]") == "2"
    assert "admin" in page.text_content(".who")  # the roles the user acts with
    assert page.evaluate("getComputedStyle(document.body).margin") == "0px", "stylesheet did not load"

    page.click("text=Sign out")
    page.wait_for_url("**/accounts/login/**")


def test_wrong_password_shows_an_error_and_stays_on_sign_in(server_url, page):
    make_user("viewer", username="vic", password=PASSWORD)

    page.goto(f"{server_url}/accounts/login/")
    page.fill("#id_login", "vic")
    page.fill("#id_password", "not the password")
    page.click("button[type=submit]")

    error = page.wait_for_selector("[role=alert]")
    assert "not correct" in error.text_content()
    assert "/accounts/login/" in page.url


def test_api_docs_render_offline_from_our_own_static_files(server_url, page):
    make_user("viewer", username="val", password=PASSWORD)
    requested = []
    page.on("request", lambda request: requested.append(request.url))

    page.goto(f"{server_url}/accounts/login/")
    page.fill("#id_login", "val")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("[data-testid=customers]")
    page.goto(f"{server_url}/api/v1/docs/")

    page.wait_for_selector("text=/api/v1/virtual-keys/{id}/rotate/")
    assert all(url.startswith(server_url) for url in requested), [u for u in requested if not u.startswith(server_url)]

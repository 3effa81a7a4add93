from __future__ import annotations

from collections.abc import Callable

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from tests.factories import make_token

ROLES = ("admin", "finance", "viewer")


@pytest.fixture(scope="session", autouse=True)
def _collected_static(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Production settings serve hashed static files from a manifest; build it once."""
    from django.conf import settings

    settings.STATIC_ROOT = str(tmp_path_factory.mktemp("static"))
    call_command("collectstatic", interactive=False, verbosity=0)


@pytest.fixture
def anon() -> APIClient:
    return APIClient()


@pytest.fixture
def client_for(db: None) -> Callable[[str | None], APIClient]:
    """An API client authenticated with a fresh token of ``role`` (None: anonymous)."""

    def build(role: str | None) -> APIClient:
        client = APIClient()
        if role is not None:
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token(role).secret}")
        return client

    return build


@pytest.fixture
def admin_api(client_for: Callable[[str | None], APIClient]) -> APIClient:
    return client_for("admin")

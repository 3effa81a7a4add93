from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from governance.actors import Actor
from governance.services.nodes import RegisteredNode, register_gateway_node
from tests.factories import make_token

ROLES = ("admin", "finance", "viewer")
FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"


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


@pytest.fixture
def node(db: None) -> RegisteredNode:
    return register_gateway_node(actor=Actor.system("tests"), name="gw-eu-1")


@pytest.fixture
def gateway(node: RegisteredNode) -> APIClient:
    """An API client authenticated as a gateway node."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {node.ingest_token}")
    return client


@pytest.fixture
def fixture_bytes() -> Callable[[str], bytes]:
    def read(name: str) -> bytes:
        path = FIXTURES / name
        if not path.exists():
            pytest.fail(f"fixture {path} is missing: the shared/ folder must sit beside the project")
        return path.read_bytes()

    return read


def _no_static_handler(handler: Any) -> Any:
    return handler


@pytest.fixture
def server_url(transactional_db: None) -> Iterator[str]:
    """Bursar served on loopback as production serves it: static files come from the
    collected, hashed manifest through WhiteNoise, not from Django's dev-only handler."""
    from django.test.testcases import LiveServerThread

    thread = LiveServerThread("127.0.0.1", _no_static_handler, connections_override={}, port=0)  # type: ignore[arg-type]
    thread.daemon = True
    thread.start()
    thread.is_ready.wait()
    if thread.error:
        raise thread.error
    yield f"http://127.0.0.1:{thread.port}"
    thread.terminate()


@pytest.fixture
def receiver() -> Iterator[Any]:
    """A real HTTP server on loopback recording every request (tests/loopback.py)."""
    from tests.loopback import loopback_server

    with loopback_server() as recorder:
        yield recorder

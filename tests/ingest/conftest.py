from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from rest_framework.test import APIClient

from governance.actors import Actor
from governance.services.nodes import RegisteredNode, register_gateway_node

FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures"


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


def native_event(**overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "request_id": "req_1",
        "timestamp": "2026-05-27T14:52:40.123Z",
        "provider": "openai",
        "model": "gpt-4o-mini",
        "input_tokens": 1000,
        "output_tokens": 100,
        "latency_ms": 312,
        "status": 200,
    }
    event.update(overrides)
    return event

"""The one interface every gateway adapter implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import httpx

from governance.crypto import decrypt
from governance.models import GatewayNode


@dataclass(frozen=True)
class Revision:
    """What adapters deliver: the revision's number, content and the exact bytes of the
    generic document (``version`` and ``issued_at`` added to the content)."""

    version: int
    sha256: str
    content: dict[str, Any]
    body: bytes


@dataclass
class ApplyResult:
    ok: bool
    status_code: int | None = None
    error: str = ""
    # Adapter data to keep on the node (e.g. which Bifrost id holds which Bursar key).
    state: dict[str, Any] | None = None
    changes: int = 0  # requests that changed something on the gateway


@dataclass
class Observation:
    """What a drift check saw. ``in_sync`` None: this gateway cannot be observed."""

    in_sync: bool | None
    detail: str = ""
    differences: list[str] = field(default_factory=list)


class GatewayError(Exception):
    """A gateway answered something unusable; the message says what."""

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class Adapter(ABC):
    """``apply(revision) -> ApplyResult`` makes the node enforce the revision;
    ``observe(revision) -> Observation`` reports whether it still does (drift).
    Neither raises for a gateway's failure: a result says what went wrong."""

    def __init__(self, node: GatewayNode, *, timeout: float) -> None:
        self.node = node
        self.base_url = node.base_url.rstrip("/")
        self.timeout = httpx.Timeout(timeout, connect=min(timeout, 3.0))

    def admin_token(self) -> str:
        return decrypt(self.node.admin_token_encrypted)

    @abstractmethod
    def apply(self, revision: Revision) -> ApplyResult: ...

    @abstractmethod
    def observe(self, revision: Revision) -> Observation: ...


def describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]

"""The one interface every gateway adapter implements."""

from __future__ import annotations

import re
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import httpx
import orjson

from governance.crypto import decrypt
from governance.models import GatewayNode


class Revision:
    """What adapters deliver: the revision's number, the exact bytes of the generic
    document (``version`` and ``issued_at`` added to the content) and, parsed only when
    an adapter asks, the content. Built once per revision and shared by every node's
    push (at 20,000 keys the document is about 7 MB)."""

    def __init__(self, *, version: int, sha256: str, document: str, body: bytes) -> None:
        self.version, self.sha256, self.document, self.body = version, sha256, document, body

    @cached_property
    def content(self) -> dict[str, Any]:
        parsed: dict[str, Any] = orjson.loads(self.document)
        return parsed


@dataclass
class ApplyResult:
    ok: bool
    status_code: int | None = None
    error: str = ""
    # Adapter data to keep on the node (e.g. which Bifrost id holds which Bursar key).
    state: dict[str, Any] | None = None
    changes: int = 0  # requests that changed something on the gateway
    warning: str = ""  # applied, but something in the desired state could not be (shown as drift)


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


_client: httpx.Client | None = None
_client_lock = threading.Lock()


def http() -> httpx.Client:
    """One HTTP client per process, shared by every push thread (httpx clients are
    thread-safe). Building a client loads the CA bundle, which costs milliseconds of
    CPU: a client per request made a ten-node push ten times slower. Requests pass
    their own timeout and headers."""
    global _client
    with _client_lock:
        if _client is None:
            _client = httpx.Client(
                limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
                headers={"User-Agent": "Bursar-Config/1"},
                follow_redirects=False,
            )
        return _client


class Session:
    """The shared client bound to one gateway: base URL, auth headers, timeout."""

    def __init__(self, base_url: str, headers: dict[str, str], timeout: httpx.Timeout) -> None:
        self.base_url, self.headers, self.timeout = base_url, headers, timeout

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return http().request(method, self.base_url + path, headers=self.headers, timeout=self.timeout, **kwargs)


# Keys and tokens a gateway might echo back in an error (LiteLLM's 422 repeats the body):
# what is stored in last_error, push attempts and logs never holds one.
_SECRETS = re.compile(r"(sk-|vk_|bsn_|bsr_|whsec_)[A-Za-z0-9_\-]{6,}")


def redact(text: str) -> str:
    return _SECRETS.sub(lambda match: f"{match.group(1)}[redacted]", text)


def raise_for_answer(response: httpx.Response, method: str, path: str) -> Any:
    """The JSON of a 2xx answer; otherwise a GatewayError with the gateway's own message
    (``{"error": {"message"}}`` for Bifrost and LiteLLM, ``{"detail"}`` for FastAPI)."""
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if not 200 <= response.status_code < 300:
        message = ""
        if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
            message = str(payload["error"].get("message", ""))
        elif isinstance(payload, dict) and "detail" in payload:
            message = str(payload["detail"])[:300]
        raise GatewayError(
            redact(f"{method} {path}: HTTP {response.status_code} {message or response.text[:200]}".strip()),
            response.status_code,
        )
    return payload


def describe(exc: Exception) -> str:
    return redact(f"{type(exc).__name__}: {exc}")[:500]

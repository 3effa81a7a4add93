"""A gateway speaking Bursar's generic protocol (api.md): it checks the signature with
its ingest token, applies only newer versions, records the order it received them in,
and reports what it enforces on GET."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

from tests.fakes.server import FakeServer


class GenericGateway(FakeServer):
    def __init__(self, ingest_token: str = "", port: int = 0) -> None:
        self.ingest_token = ingest_token
        self.received_versions: list[int] = []
        self.applied: dict[str, Any] | None = None
        self.applied_at: dict[int, float] = {}
        self.status_override: int | None = None
        self._status: dict[str, str] = {}  # public id -> status of the applied document
        super().__init__(port)

    @property
    def version(self) -> int | None:
        return self.applied["version"] if self.applied else None

    def blocked(self, public_id: str) -> bool:
        return self._status.get(public_id) == "blocked"

    def holds(self, public_id: str) -> bool:
        return public_id in self._status

    def forget(self) -> None:
        """A restart: the gateway holds no config until the next push."""
        self.applied, self._status = None, {}

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        if path != "/bursar/config":
            return 404, {"error": "not found"}
        if method == "GET":
            return (200, self.applied) if self.applied else (404, {"error": "no config yet"})
        if method != "PUT":
            return 405, {"error": "method not allowed"}
        if self.status_override:
            return self.status_override, {"error": "scripted"}
        expected = "sha256=" + hmac.new(self.ingest_token.encode(), body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, headers.get("X-Bursar-Signature", "")):
            return 401, {"error": "bad signature"}
        document = json.loads(body)
        version = int(headers["X-Bursar-Version"])
        if version != document["version"]:
            return 400, {"error": "version header and body disagree"}
        self.received_versions.append(version)
        if self.applied is None or version > self.applied["version"]:
            self.applied = document
            self._status = {entry["id"]: entry["status"] for entry in document["virtual_keys"]}
            self.applied_at[version] = time.monotonic()
        return 200, {"applied": self.applied["version"]}

"""A contract fake of Bifrost's governance HTTP API (maximhq/bifrost,
``transports/bifrost-http/handlers/governance.go``, v1.5-era), enough to check the
adapter's request shapes: routes, 200 answers wrapped as ``{"message", "virtual_key"}``,
server-generated ids and ``sk-bf-`` values, name uniqueness, team XOR customer, PUT as a
partial update that detaches a key sent with neither owner, provider configs replaced
wholesale, rate limits removed by all-null fields, HTTP Basic admin auth, and the
``{"is_bifrost_error", "status_code", "error": {"message"}}`` error body."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any
from urllib.parse import urlsplit

from tests.fakes.server import FakeServer

PREFIX = "/api/governance/"


def _error(status: int, message: str) -> tuple[int, Any]:
    return status, {"is_bifrost_error": False, "status_code": status, "error": {"message": message}, "extra_fields": {}}


class FakeBifrost(FakeServer):
    def __init__(self, username: str = "admin", password: str = "bifrost-pass", port: int = 0) -> None:  # noqa: S107
        self.credentials = f"{username}:{password}" if username else ""
        self.virtual_keys: dict[str, dict[str, Any]] = {}
        self.teams: dict[str, dict[str, Any]] = {}
        self.customers: dict[str, dict[str, Any]] = {}
        self.writes: list[tuple[str, str, dict[str, Any] | None]] = []
        super().__init__(port)

    def seed_virtual_key(self, name: str, value: str) -> dict[str, Any]:
        """A key defined in the node's config.json (value chosen there)."""
        vk_id = str(uuid.uuid4())
        vk: dict[str, Any] = {"id": vk_id, "name": name, "value": value, "is_active": True, "provider_configs": []}
        self.virtual_keys[vk_id] = vk
        return vk

    def by_name(self, name: str) -> dict[str, Any] | None:
        return next((vk for vk in self.virtual_keys.values() if vk["name"] == name), None)

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        if self.credentials:
            expected = "Basic " + base64.b64encode(self.credentials.encode()).decode()
            if headers.get("Authorization") != expected:
                return 401, {"error": {"message": "Unauthorized"}}
        route = urlsplit(path).path
        if not route.startswith(PREFIX):
            return 404, f"Route not found: {route}".encode()
        parts = route[len(PREFIX) :].strip("/").split("/")
        collection = {"virtual-keys": self.virtual_keys, "teams": self.teams, "customers": self.customers}.get(parts[0])
        if collection is None:
            return 404, f"Route not found: {route}".encode()
        payload: dict[str, Any] | None = None
        if method in ("POST", "PUT"):
            try:
                payload = json.loads(body)
                assert isinstance(payload, dict)
            except (ValueError, AssertionError):
                return _error(400, "Invalid JSON")
        if method != "GET":
            self.writes.append((method, route, payload))
        kind = {"virtual-keys": "virtual_key", "teams": "team", "customers": "customer"}[parts[0]]
        label = {"virtual_key": "Virtual key", "team": "Team", "customer": "Customer"}[kind]
        if len(parts) == 1:
            if method == "GET":
                items = sorted(collection.values(), key=lambda item: item["name"])
                return 200, {kind + "s": items, "count": len(items), "total_count": len(items)}
            if method == "POST":
                return self._create(kind, label, collection, payload or {})
            return 405, b"Method Not Allowed"
        item = collection.get(parts[1])
        if item is None:
            return _error(404, f"{label} not found")
        if method == "GET":
            return 200, {kind: item}
        if method == "DELETE":
            del collection[parts[1]]
            return 200, {"message": f"{label} deleted successfully"}
        if method == "PUT":
            return self._update(kind, label, item, payload or {})
        return 405, b"Method Not Allowed"

    def _validate(self, kind: str, payload: dict[str, Any]) -> tuple[int, Any] | None:
        if kind == "virtual_key" and payload.get("team_id") and payload.get("customer_id"):
            return _error(400, "VirtualKey cannot be attached to both Team and Customer")
        limits = payload.get("rate_limit") or {}
        for field in ("request_max_limit", "token_max_limit"):
            if limits.get(field) is not None and limits[field] <= 0:
                return 500, {"error": {"message": "rate limit must be positive"}}
            duration = field.replace("max_limit", "reset_duration")
            if limits.get(field) is not None and not limits.get(duration):
                return 500, {"error": {"message": f"{duration} is required"}}
        for config in payload.get("provider_configs") or []:
            if not config.get("provider"):
                return _error(400, "provider is required")
            models = config.get("allowed_models") or []
            if "*" in models and len(models) > 1:
                return _error(400, "allowed_models cannot mix '*' with model names")
        return None

    def _create(self, kind: str, label: str, collection: dict[str, Any], payload: dict[str, Any]) -> tuple[int, Any]:
        if not payload.get("name"):
            return _error(400, f"{label} name is required")
        if any(item["name"] == payload["name"] for item in collection.values()):
            return 500, {"error": {"message": f"failed to create {kind}: duplicate name"}}
        problem = self._validate(kind, payload)
        if problem:
            return problem
        item = {"id": str(uuid.uuid4()), "name": payload["name"]}
        if kind == "virtual_key":
            item |= {
                "value": f"sk-bf-{uuid.uuid4()}",
                "description": payload.get("description", ""),
                "is_active": payload.get("is_active", True),
                "team_id": payload.get("team_id"),
                "customer_id": payload.get("customer_id"),
                "provider_configs": self._configs(payload.get("provider_configs") or []),
                "rate_limit": self._rate_limit(None, payload.get("rate_limit")),
            }
        elif kind == "team":
            item["customer_id"] = payload.get("customer_id")
        collection[item["id"]] = item
        return 200, {"message": f"{label} created successfully", kind: item}

    def _update(self, kind: str, label: str, item: dict[str, Any], payload: dict[str, Any]) -> tuple[int, Any]:
        problem = self._validate(kind, payload)
        if problem:
            return problem
        for field in ("name", "description", "is_active"):
            if field in payload:
                item[field] = payload[field]
        if kind == "virtual_key":
            # Neither owner in the body detaches the key (Bifrost's updateVirtualKey).
            item["team_id"] = payload.get("team_id")
            item["customer_id"] = None if payload.get("team_id") else payload.get("customer_id")
            if "provider_configs" in payload:
                item["provider_configs"] = self._configs(payload["provider_configs"] or [])
            if "rate_limit" in payload:
                item["rate_limit"] = self._rate_limit(item.get("rate_limit"), payload["rate_limit"])
        return 200, {"message": f"{label} updated successfully", kind: item}

    @staticmethod
    def _configs(configs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{"id": n + 1, **config} for n, config in enumerate(configs)]

    @staticmethod
    def _rate_limit(current: dict[str, Any] | None, sent: dict[str, Any] | None) -> dict[str, Any] | None:
        if not sent or (sent.get("request_max_limit") is None and sent.get("token_max_limit") is None):
            return None  # all-null removes it
        # Otherwise a partial update: null fields are skipped, as Bifrost's PUT does.
        empty = dict.fromkeys(
            ("request_max_limit", "request_reset_duration", "token_max_limit", "token_reset_duration")
        )
        return {**empty, **(current or {}), **{name: value for name, value in sent.items() if value is not None}}

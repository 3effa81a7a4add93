"""A contract fake of the LiteLLM proxy management API (BerriAI/litellm 1.110,
``proxy/management_endpoints/{key_management,team,customer}_endpoints.py``): master-key
auth, custom keys that must start with ``sk-`` (at least 16 characters), keys stored
and addressed by SHA-256 of the raw key, unique ``key_alias``, ``/key/generate`` on an
existing key a silent no-op, ``/key/block``/``unblock``, ``/key/delete`` by hashes or
aliases (404 when none matched), ``/key/list?return_full_object=true``, teams and
customers with 400 on duplicates, and the ``{"error": {"message", "type", "param",
"code"}}`` error body."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fakes.server import FakeServer

BLOCKABLE = re.compile(r"^sk-[A-Za-z0-9_-]+$|^[a-fA-F0-9]{64}$")


def _error(status: int, message: str, type_: str = "bad_request_error", param: str | None = None) -> tuple[int, Any]:
    return status, {"error": {"message": message, "type": type_, "param": param, "code": str(status)}}


def hash_if_needed(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest() if value.startswith("sk-") else value


class FakeLiteLLM(FakeServer):
    def __init__(self, master_key: str = "sk-master-0123456789", port: int = 0) -> None:
        self.master_key = master_key
        self.keys: dict[str, dict[str, Any]] = {}  # by token (sha256 of the raw key)
        self.teams: dict[str, dict[str, Any]] = {}
        self.customers: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, dict[str, Any]]] = []
        super().__init__(port)

    def by_alias(self, alias: str) -> dict[str, Any] | None:
        return next((key for key in self.keys.values() if key["key_alias"] == alias), None)

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        if headers.get("Authorization") != f"Bearer {self.master_key}":
            return _error(401, "Authentication Error, Invalid API key provided.", "auth_error")
        url = urlsplit(path)
        if method == "GET" and url.path == "/key/list":
            query = parse_qs(url.query)
            size, page = int(query.get("size", ["10"])[0]), int(query.get("page", ["1"])[0])
            everything = sorted(self.keys.values(), key=lambda key: key["token"])
            chosen = everything[(page - 1) * size : page * size]
            full = query.get("return_full_object", ["false"])[0] == "true"
            return 200, {
                "keys": chosen if full else [key["token"] for key in chosen],
                "total_count": len(everything),
                "current_page": page,
                "total_pages": max(1, -(-len(everything) // size)),
            }
        if method != "POST":
            return 405, {"detail": "Method Not Allowed"}
        try:
            payload = json.loads(body)
            assert isinstance(payload, dict)
        except (ValueError, AssertionError):
            return 422, {"detail": [{"msg": "invalid JSON"}]}
        self.calls.append((url.path, payload))
        handler = {
            "/key/generate": self._generate,
            "/key/update": self._update,
            "/key/block": lambda p: self._block(p, True),
            "/key/unblock": lambda p: self._block(p, False),
            "/key/delete": self._delete,
            "/team/new": self._team,
            "/customer/new": self._customer,
        }.get(url.path)
        return handler(payload) if handler else (404, {"detail": "Not Found"})

    def _alias_taken(self, alias: str | None, token: str | None) -> bool:
        return bool(alias) and any(k["key_alias"] == alias and k["token"] != token for k in self.keys.values())

    def _generate(self, payload: dict[str, Any]) -> tuple[int, Any]:
        raw = payload.get("key") or ""
        if not raw.startswith("sk-"):
            return _error(400, "Invalid key format. LiteLLM Virtual Key must start with 'sk-'.")
        if len(raw) < 16:
            return _error(400, "Custom key must be at least 16 characters")
        token = hash_if_needed(raw)
        if payload.get("key_alias") and any(k["key_alias"] == payload["key_alias"] for k in self.keys.values()):
            message = (
                f"Key with alias '{payload['key_alias']}' already exists. "
                "Unique key aliases across all keys are required."
            )
            return _error(400, message, param="key_alias")
        if token not in self.keys:  # an existing key is left as it is (Prisma upsert with update={})
            self.keys[token] = {"token": token, "blocked": payload.get("blocked") or False} | self._fields(payload)
        return 200, {"key": raw, "token": token, **self._fields(payload)}

    @staticmethod
    def _fields(payload: dict[str, Any]) -> dict[str, Any]:
        return {
            "key_alias": payload.get("key_alias"),
            "models": payload.get("models") or [],
            "rpm_limit": payload.get("rpm_limit"),
            "tpm_limit": payload.get("tpm_limit"),
            "team_id": payload.get("team_id"),
            "metadata": payload.get("metadata") or {},
        }

    def _update(self, payload: dict[str, Any]) -> tuple[int, Any]:
        if "key" not in payload:
            return 422, {"detail": [{"msg": "key or key_alias required"}]}
        token = hash_if_needed(payload["key"])
        key = self.keys.get(token)
        if key is None:
            return _error(404, "Key not found.", "not_found_error", "key")
        if self._alias_taken(payload.get("key_alias"), token):
            return _error(400, f"Key with alias '{payload['key_alias']}' already exists.", param="key_alias")
        for field in ("key_alias", "models", "rpm_limit", "tpm_limit", "team_id", "metadata", "blocked"):
            if field in payload:
                key[field] = payload[field]
        return 200, {"key": payload["key"], **key}

    def _block(self, payload: dict[str, Any], blocked: bool) -> tuple[int, Any]:
        value = payload.get("key")
        if not isinstance(value, str) or not BLOCKABLE.match(value) or len(value) > 100:
            return _error(400, "Invalid key format.", param="key")
        key = self.keys.get(hash_if_needed(value))
        if key is None:
            return _error(404, "Key not found.", "not_found_error", "key")
        key["blocked"] = blocked
        return 200, key

    def _delete(self, payload: dict[str, Any]) -> tuple[int, Any]:
        if payload.get("keys"):
            tokens = [hash_if_needed(value) for value in payload["keys"]]
        elif payload.get("key_aliases"):
            tokens = [k["token"] for k in self.keys.values() if k["key_alias"] in payload["key_aliases"]]
        else:
            return 422, {"detail": [{"msg": "At least one of 'keys' or 'key_aliases' must be provided."}]}
        found = [token for token in tokens if token in self.keys]
        if not found:
            return _error(404, "{'error': 'No keys found'}", "invalid_request_error")
        for token in found:
            del self.keys[token]
        return 200, {"deleted_keys": payload.get("keys") or payload.get("key_aliases")}

    def _team(self, payload: dict[str, Any]) -> tuple[int, Any]:
        team_id = str(payload.get("team_id") or "")
        if team_id in self.teams:
            message = f"{{'error': 'Team id = {team_id} already exists. Please use a different team id.'}}"
            return _error(400, message, "invalid_request_error")
        self.teams[team_id] = {"team_id": team_id, "team_alias": payload.get("team_alias"), "models": []}
        return 200, self.teams[team_id]

    def _customer(self, payload: dict[str, Any]) -> tuple[int, Any]:
        user_id = payload.get("user_id")
        if not user_id:
            return 422, {"detail": [{"msg": "user_id required"}]}
        if user_id in self.customers:
            message = f"Customer already exists, passed user_id={user_id}. Please pass a new user_id."
            return _error(400, message, "bad_request", "user_id")
        self.customers[user_id] = {"user_id": user_id, "alias": payload.get("alias"), "blocked": False}
        return 200, self.customers[user_id]

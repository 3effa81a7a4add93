"""``bifrost``: Bifrost's governance HTTP API (maximhq/bifrost,
``transports/bifrost-http/handlers/governance.go``).

Mapping (one Bursar object, one Bifrost object, matched by name):

- a Bursar key → a Bifrost virtual key named by the key's public id (``vk_…``):
  ``is_active`` false when Bursar blocks it; ``rate_limit`` from requests/tokens per
  minute (``request_max_limit``/``token_max_limit`` per ``1m``); ``provider_configs``
  from allowed models (``openai/gpt-4o-mini`` → provider ``openai``, model
  ``gpt-4o-mini``; ``anthropic/*`` → ``["*"]``); attached to its team, else its customer;
- a Bursar team → a Bifrost team named by its slug; a customer → a Bifrost customer
  named by its external id (created when a key needs them, never deleted).

Caveats, from Bifrost's design:

- Bifrost generates virtual key values itself (``sk-bf-…``); only its ``config.json``
  can set them. Keys Bursar creates through the API get a different value on each node,
  so for a fleet, define each key in every node's ``config.json`` with the same value and
  the public id as its name: Bursar then finds it by name and governs it.
- Bifrost keeps governance state per node. Bursar applies every change on **every** node
  and repairs drift; budgets are not pushed as Bifrost budgets, because each replica
  would count only its own traffic (N replicas allow N times the cap): Bursar enforces caps itself
  and turns the key off everywhere.
- Bifrost's PUT skips null fields and reads an empty model list as "deny all": a limit
  Bursar drops is removed with an all-null rate limit first, and a key Bursar opens to
  every model gets ``["*"]`` on each provider Bifrost had for it.
- Keys that leave the desired state (revoked, expired) are deleted, but only those
  Bursar has governed on that node (their ids are kept in the node's ``state``).
"""

from __future__ import annotations

import base64
from typing import Any

import httpx

from governance.gateways.base import (
    Adapter,
    ApplyResult,
    GatewayError,
    Observation,
    Revision,
    Session,
    describe,
    raise_for_answer,
)

API = "/api/governance"


def auth_headers(admin_token: str) -> dict[str, str]:
    """``user:password`` → HTTP Basic (Bifrost's admin auth); anything else → Bearer
    (a session token); empty → no header (auth disabled on the gateway)."""
    if not admin_token:
        return {}
    if ":" in admin_token and not admin_token.lower().startswith("bearer "):
        return {"Authorization": "Basic " + base64.b64encode(admin_token.encode()).decode()}
    token = admin_token.split(" ", 1)[1] if admin_token.lower().startswith("bearer ") else admin_token
    return {"Authorization": f"Bearer {token}"}


def provider_configs(allowed_models: list[str]) -> list[dict[str, Any]] | None:
    """Bursar's ``provider/model`` patterns as Bifrost provider configs; None when every
    model is allowed (Bursar's empty list or ``*``), which leaves Bifrost's own setting."""
    if not allowed_models or "*" in allowed_models:
        return None
    by_provider: dict[str, list[str]] = {}
    for pattern in allowed_models:
        provider, _, model = pattern.partition("/")
        if not model:
            continue  # a bare model prefix names no provider; Bifrost cannot express it
        by_provider.setdefault(provider, [])
        if model == "*" or "*" in by_provider[provider]:
            by_provider[provider] = ["*"]
        elif model not in by_provider[provider]:
            by_provider[provider].append(model)
    return [
        {"provider": provider, "allowed_models": sorted(models), "key_ids": ["*"], "weight": 1.0}
        for provider, models in sorted(by_provider.items())
    ]


def rate_limit(entry: dict[str, Any]) -> dict[str, Any]:
    limits = entry["rate_limit"]
    rpm, tpm = limits.get("requests_per_minute"), limits.get("tokens_per_minute")
    return {
        "request_max_limit": rpm,
        "request_reset_duration": "1m" if rpm else None,
        "token_max_limit": tpm,
        "token_reset_duration": "1m" if tpm else None,
    }


NO_LIMIT = {
    "request_max_limit": None,
    "request_reset_duration": None,
    "token_max_limit": None,
    "token_reset_duration": None,
}


def clears_a_limit(found: dict[str, Any], body: dict[str, Any]) -> bool:
    """Whether ``body`` drops a per-minute limit the Bifrost key still has."""
    held, wanted = found.get("rate_limit") or {}, body.get("rate_limit") or {}
    return any(
        held.get(name) is not None and wanted.get(name) is None for name in ("request_max_limit", "token_max_limit")
    )


def widen_models(body: dict[str, Any], found: dict[str, Any]) -> dict[str, Any]:
    """Bursar allows every model but the Bifrost key restricts some: Bifrost cannot be
    told "no restriction" (an empty list denies everything), so each provider it has
    is opened to every model (``["*"]``)."""
    if "provider_configs" in body:
        return body
    configs = found.get("provider_configs") or []
    if all((c.get("allowed_models") or []) == ["*"] for c in configs):
        return body
    opened = [
        {"id": c["id"], "provider": c.get("provider"), "allowed_models": ["*"], "key_ids": c.get("key_ids") or ["*"]}
        for c in configs
        if c.get("provider")
    ]
    return {**body, "provider_configs": opened}


def differences(found: dict[str, Any], body: dict[str, Any]) -> list[str]:
    """Which governed parts of a Bifrost key differ from what ``body`` would set
    (provider configs only when Bursar restricts models)."""
    wanted, seen = _comparable(body), _comparable(found)
    if "provider_configs" not in body:
        del wanted["provider_configs"], seen["provider_configs"]
    return sorted(name for name in wanted if wanted[name] != seen[name])


def _comparable(vk: dict[str, Any]) -> dict[str, Any]:
    """The parts of a Bifrost virtual key Bursar governs, in a comparable form."""
    limits = vk.get("rate_limit") or {}
    configs = vk.get("provider_configs") or []
    return {
        "is_active": vk.get("is_active", True),
        "team_id": vk.get("team_id") or None,
        "customer_id": None if vk.get("team_id") else (vk.get("customer_id") or None),
        "rate_limit": {
            "request_max_limit": limits.get("request_max_limit"),
            "token_max_limit": limits.get("token_max_limit"),
        },
        "provider_configs": sorted((c.get("provider"), tuple(sorted(c.get("allowed_models") or []))) for c in configs),
    }


class BifrostAdapter(Adapter):
    def _client(self) -> Session:
        return Session(self.base_url, auth_headers(self.admin_token()), self.timeout)

    @staticmethod
    def _call(client: Session, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        payload = raise_for_answer(client.request(method, API + path, json=body), method, path)
        if not isinstance(payload, dict):
            raise GatewayError(f"{method} {path}: the answer is not a JSON object")
        return payload

    def _list(self, client: Session, what: str) -> list[dict[str, Any]]:
        items = self._call(client, "GET", f"/{what}").get(what.replace("-", "_"))
        if isinstance(items, dict):  # from_memory answers keyed by id
            items = list(items.values())
        if not isinstance(items, list):
            raise GatewayError(f"GET /{what}: no {what} list in the answer")
        return [item for item in items if isinstance(item, dict)]

    def _ensure(
        self, client: Session, what: str, names: dict[str, dict[str, Any]], created: dict[str, str]
    ) -> dict[str, str]:
        """Ids of the teams or customers named in ``names`` (created when missing)."""
        existing = {item["name"]: str(item["id"]) for item in self._list(client, what) if "name" in item}
        singular = what[:-1]
        for name, body in sorted(names.items()):
            if name not in existing:
                answer = self._call(client, "POST", f"/{what}", {"name": name, **body})
                existing[name] = str(answer[singular]["id"])
                created[name] = existing[name]
        return existing

    def _body(self, entry: dict[str, Any], teams: dict[str, str], customers: dict[str, str]) -> dict[str, Any]:
        body: dict[str, Any] = {
            "name": entry["id"],
            "description": f"Bursar key {entry['name']}",
            "is_active": entry["status"] == "active",
            "rate_limit": rate_limit(entry),
        }
        # Bifrost detaches a key sent with neither: always send the association.
        if entry.get("team"):
            body["team_id"] = teams[entry["team"]]
        elif entry.get("customer"):
            body["customer_id"] = customers[entry["customer"]]
        configs = provider_configs(entry["allowed_models"])
        if configs is not None:
            body["provider_configs"] = configs
        return body

    def apply(self, revision: Revision) -> ApplyResult:
        state: dict[str, Any] = {
            "keys": dict(self.node.state.get("keys", {})),
            "teams": dict(self.node.state.get("teams", {})),
            "customers": dict(self.node.state.get("customers", {})),
        }
        entries = revision.content["virtual_keys"]
        errors: list[str] = []
        changes = 0
        try:
            with self._client() as client:
                customers = self._ensure(
                    client,
                    "customers",
                    {e["customer"]: {} for e in entries if e.get("customer")},
                    state["customers"],
                )
                team_owner = {e["team"]: e.get("customer") for e in entries if e.get("team")}
                teams = self._ensure(
                    client,
                    "teams",
                    {slug: ({"customer_id": customers[owner]} if owner else {}) for slug, owner in team_owner.items()},
                    state["teams"],
                )
                current = {vk["name"]: vk for vk in self._list(client, "virtual-keys") if "name" in vk}
                wanted = set()
                for entry in entries:
                    wanted.add(entry["id"])
                    body = self._body(entry, teams, customers)
                    found = current.get(entry["id"])
                    try:
                        if found is None:
                            answer = self._call(client, "POST", "/virtual-keys", body)
                            state["keys"][entry["id"]] = str(answer["virtual_key"]["id"])
                            changes += 1
                        else:
                            state["keys"][entry["id"]] = str(found["id"])
                            body = widen_models(body, found)
                            if differences(found, body):
                                if clears_a_limit(found, body):
                                    # Bifrost's PUT skips null fields; only an all-null rate
                                    # limit removes one. Remove it, then set what remains.
                                    owner = {k: body[k] for k in ("team_id", "customer_id") if k in body}
                                    path = f"/virtual-keys/{found['id']}"
                                    self._call(client, "PUT", path, {"rate_limit": NO_LIMIT, **owner})
                                    changes += 1
                                self._call(client, "PUT", f"/virtual-keys/{found['id']}", body)
                                changes += 1
                    except GatewayError as exc:
                        errors.append(f"{entry['id']}: {exc}")
                for public_id, vk_id in sorted(state["keys"].items()):
                    if public_id in wanted:
                        continue
                    try:
                        self._call(client, "DELETE", f"/virtual-keys/{vk_id}")
                        changes += 1
                    except GatewayError as exc:
                        if exc.status_code != 404:
                            errors.append(f"{public_id}: {exc}")
                            continue
                    del state["keys"][public_id]
        except (GatewayError, httpx.HTTPError, KeyError, TypeError) as exc:
            return ApplyResult(ok=False, error=describe(exc), state=state, changes=changes)
        if errors:
            return ApplyResult(ok=False, error="; ".join(errors)[:2000], state=state, changes=changes)
        return ApplyResult(ok=True, state=state, changes=changes)

    def observe(self, revision: Revision) -> Observation:
        try:
            with self._client() as client:
                current = {vk["name"]: vk for vk in self._list(client, "virtual-keys") if "name" in vk}
                teams = {t["name"]: str(t["id"]) for t in self._list(client, "teams") if "name" in t}
                customers = {c["name"]: str(c["id"]) for c in self._list(client, "customers") if "name" in c}
        except (GatewayError, httpx.HTTPError) as exc:
            return Observation(in_sync=False, detail=describe(exc))
        drift: list[str] = []
        for entry in revision.content["virtual_keys"]:
            found = current.get(entry["id"])
            if found is None:
                drift.append(f"{entry['id']} missing")
                continue
            if (entry.get("team") and entry["team"] not in teams) or (
                entry.get("customer") and entry["customer"] not in customers
            ):
                drift.append(f"{entry['id']}: its team or customer is missing")
                continue
            changed = differences(found, widen_models(self._body(entry, teams, customers), found))
            if changed:
                drift.append(f"{entry['id']}: {', '.join(changed)} differ")
        for public_id in self.node.state.get("keys", {}):
            if public_id in current and public_id not in {e["id"] for e in revision.content["virtual_keys"]}:
                drift.append(f"{public_id} should be gone")
        return Observation(in_sync=not drift, differences=drift[:50])

"""``litellm``: the LiteLLM proxy management API, with the proxy's master key.

- Each Bursar key becomes a LiteLLM key created with ``/key/generate`` and ``key`` set
  from the Bursar secret, so the same key works on every LiteLLM node. LiteLLM only
  accepts keys that start with ``sk-``, so the LiteLLM key is ``sk-`` followed by the
  Bursar secret (``sk-vk_…``): clients of a LiteLLM fleet present that. ``key_alias`` is
  the public id; ``models``, ``rpm_limit``, ``tpm_limit``, ``team_id`` follow the key.
  Status changes use ``/key/block`` and ``/key/unblock``; other changes ``/key/update``.
- During a rotation's grace window the previous secret is a second LiteLLM key (alias
  ``<public id>~previous``), deleted when the window ends.
- Revoked and expired keys are deleted (``/key/delete``).
- Teams (``/team/new``, ``team_id`` = slug) and customers (``/customer/new``,
  ``user_id`` = external id) are created when a key needs them, never deleted.

What was applied is remembered per node (LiteLLM's key hash and a fingerprint of the
fields), so a push sends only what changed; a drift check reads ``/key/list`` back.
"""

from __future__ import annotations

import hashlib
from typing import Any

import httpx

from governance.crypto import decrypt
from governance.desired_state import canonical_json, content_sha256
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
from governance.models import VirtualKey

PREVIOUS = "~previous"


def litellm_key(secret: str) -> str:
    return f"sk-{secret}"


def litellm_hash(raw_key: str) -> str:
    """LiteLLM stores and addresses keys by the SHA-256 hex of the raw key."""
    return hashlib.sha256(raw_key.encode()).hexdigest()


def key_fields(entry: dict[str, Any]) -> dict[str, Any]:
    patterns = entry["allowed_models"]
    return {
        "key_alias": entry["id"],
        "models": [] if not patterns or "*" in patterns else list(patterns),  # [] = every model
        "rpm_limit": entry["rate_limit"]["requests_per_minute"],
        "tpm_limit": entry["rate_limit"]["tokens_per_minute"],
        "team_id": entry.get("team"),
        "metadata": {"bursar_key": entry["id"], "bursar_customer": entry.get("customer")},
    }


class LiteLLMAdapter(Adapter):
    def _client(self) -> Session:
        return Session(self.base_url, {"Authorization": f"Bearer {self.admin_token()}"}, self.timeout)

    @staticmethod
    def _call(client: Session, method: str, path: str, **kwargs: Any) -> Any:
        return raise_for_answer(client.request(method, path, **kwargs), method, path)

    def _secrets(self, public_ids: list[str]) -> dict[str, tuple[str, str]]:
        rows = VirtualKey.objects.filter(public_id__in=public_ids).values_list(
            "public_id", "secret_encrypted", "previous_secret_encrypted"
        )
        return {public_id: (decrypt(current), decrypt(previous)) for public_id, current, previous in rows}

    def _desired(self, entries: list[dict[str, Any]], skipped: list[str]) -> dict[str, dict[str, Any]]:
        """alias → {"key": raw LiteLLM key, "fields": ..., "blocked": bool}."""
        secrets = self._secrets([entry["id"] for entry in entries])
        desired: dict[str, dict[str, Any]] = {}
        for entry in entries:
            current, previous = secrets.get(entry["id"], ("", ""))
            if not current:
                skipped.append(entry["id"])  # issued before provisioning: no stored secret
                continue
            fields = key_fields(entry)
            blocked = entry["status"] != "active"
            desired[entry["id"]] = {"key": litellm_key(current), "fields": fields, "blocked": blocked}
            if entry.get("previous_secret_sha256") and previous:
                alias = entry["id"] + PREVIOUS
                desired[alias] = {
                    "key": litellm_key(previous),
                    "fields": fields | {"key_alias": alias},
                    "blocked": blocked,
                }
        return desired

    def apply(self, revision: Revision) -> ApplyResult:
        entries = revision.content["virtual_keys"]
        state: dict[str, Any] = {
            "keys": {alias: dict(value) for alias, value in self.node.state.get("keys", {}).items()},
            "teams": sorted(self.node.state.get("teams", [])),
            "customers": sorted(self.node.state.get("customers", [])),
        }
        errors: list[str] = []
        skipped: list[str] = []
        changes = 0
        desired = self._desired(entries, skipped)
        try:
            with self._client() as client:
                changes += self._ensure_owners(client, entries, state)
                changes += self._keep_rotated_keys(client, desired, state)
                for alias, want in sorted(desired.items()):
                    try:
                        changes += self._apply_key(client, alias, want, state)
                    except GatewayError as exc:
                        errors.append(f"{alias}: {exc}")
                for alias in sorted(set(state["keys"]) - set(desired)):
                    try:
                        self._call(client, "POST", "/key/delete", json={"keys": [state["keys"][alias]["hash"]]})
                        changes += 1
                    except GatewayError as exc:
                        if exc.status_code != 404:
                            errors.append(f"{alias}: {exc}")
                            continue
                    del state["keys"][alias]
        except (GatewayError, httpx.HTTPError) as exc:
            return ApplyResult(ok=False, error=describe(exc), state=state, changes=changes)
        if errors:
            return ApplyResult(ok=False, error="; ".join(errors)[:2000], state=state, changes=changes)
        warning = (
            f"not provisioned (issued before Bursar kept secrets for gateways; rotate them): {', '.join(skipped)}"
            if skipped
            else ""
        )
        return ApplyResult(ok=True, state=state, changes=changes, warning=warning)

    def _keep_rotated_keys(self, client: Session, desired: dict[str, dict[str, Any]], state: dict[str, Any]) -> int:
        """A rotated key's old LiteLLM key becomes its ``~previous`` key by renaming it,
        never by deleting and re-creating it: the old secret keeps working throughout."""
        renamed = 0
        for alias, held in sorted(state["keys"].items()):
            previous = desired.get(alias + PREVIOUS)
            if alias.endswith(PREVIOUS) or previous is None or litellm_hash(previous["key"]) != held["hash"]:
                continue
            self._call(client, "POST", "/key/update", json={"key": held["hash"], "key_alias": alias + PREVIOUS})
            state["keys"][alias + PREVIOUS] = {**held, "fingerprint": ""}  # fields are set again below
            del state["keys"][alias]
            renamed += 1
        return renamed

    def _ensure_owners(self, client: Session, entries: list[dict[str, Any]], state: dict[str, Any]) -> int:
        created = 0
        for slug in sorted({e["team"] for e in entries if e.get("team")} - set(state["teams"])):
            try:
                self._call(client, "POST", "/team/new", json={"team_id": slug, "team_alias": slug})
                created += 1
            except GatewayError as exc:
                if not (exc.status_code == 400 and "already exists" in str(exc)):
                    raise
            state["teams"] = sorted({*state["teams"], slug})
        for external_id in sorted({e["customer"] for e in entries if e.get("customer")} - set(state["customers"])):
            try:
                self._call(client, "POST", "/customer/new", json={"user_id": external_id, "alias": external_id})
                created += 1
            except GatewayError as exc:
                if not (exc.status_code == 400 and "already exists" in str(exc)):
                    raise
            state["customers"] = sorted({*state["customers"], external_id})
        return created

    def _apply_key(self, client: Session, alias: str, want: dict[str, Any], state: dict[str, Any]) -> int:
        token = litellm_hash(want["key"])
        fingerprint = content_sha256(canonical_json(want["fields"]))
        held = state["keys"].get(alias)
        calls = 0
        if held is None or held["hash"] != token:
            if held is not None:  # rotated: the old secret's key goes
                self._delete(client, held["hash"])
                calls += 1
            try:
                self._call(client, "POST", "/key/generate", json={"key": want["key"], **want["fields"]})
            except GatewayError as exc:
                if not (exc.status_code == 400 and "alias" in str(exc)):
                    raise
                # The alias is taken by a key this node's state forgot: replace it.
                self._call(client, "POST", "/key/delete", json={"key_aliases": [alias]})
                self._call(client, "POST", "/key/generate", json={"key": want["key"], **want["fields"]})
                calls += 1
            # /key/generate on a key that already exists changes nothing: set the fields.
            self._call(client, "POST", "/key/update", json={"key": token, **want["fields"], "blocked": want["blocked"]})
            calls += 2
        elif held["fingerprint"] != fingerprint:
            self._call(client, "POST", "/key/update", json={"key": token, **want["fields"], "blocked": want["blocked"]})
            calls += 1
        elif held["blocked"] != want["blocked"]:
            self._call(client, "POST", "/key/block" if want["blocked"] else "/key/unblock", json={"key": token})
            calls += 1
        state["keys"][alias] = {"hash": token, "fingerprint": fingerprint, "blocked": want["blocked"]}
        return calls

    def _delete(self, client: Session, token: str) -> None:
        try:
            self._call(client, "POST", "/key/delete", json={"keys": [token]})
        except GatewayError as exc:
            if exc.status_code != 404:
                raise

    def observe(self, revision: Revision) -> Observation:
        desired = self._desired(revision.content["virtual_keys"], [])
        seen: dict[str, dict[str, Any]] = {}
        try:
            with self._client() as client:
                page = 1
                while True:
                    answer = self._call(
                        client, "GET", "/key/list", params={"return_full_object": "true", "size": 100, "page": page}
                    )
                    for item in answer.get("keys", []):
                        if isinstance(item, dict) and item.get("token"):
                            seen[item["token"]] = item
                    if page >= int(answer.get("total_pages") or 1):
                        break
                    page += 1
        except (GatewayError, httpx.HTTPError, ValueError, AttributeError) as exc:
            return Observation(in_sync=False, detail=describe(exc))
        drift = []
        for alias, want in sorted(desired.items()):
            found = seen.get(litellm_hash(want["key"]))
            if found is None:
                drift.append(f"{alias} missing")
                continue
            fields = want["fields"]
            if bool(found.get("blocked")) != want["blocked"]:
                drift.append(f"{alias}: blocked is {bool(found.get('blocked'))}")
            elif sorted(found.get("models") or []) != sorted(fields["models"]):
                drift.append(f"{alias}: models differ")
            elif found.get("rpm_limit") != fields["rpm_limit"] or found.get("tpm_limit") != fields["tpm_limit"]:
                drift.append(f"{alias}: rate limits differ")
        return Observation(in_sync=not drift, differences=drift[:50])

"""``generic``: the Bursar protocol (api.md). ``PUT {base_url}/bursar/config`` with the
document, ``X-Bursar-Version`` and ``X-Bursar-Signature: sha256=<HMAC-SHA256 of the
body keyed by the node's ingest token>``; 2xx means applied. Drift: ``GET`` of the same
URL answering the document the gateway enforces (404: it holds none, e.g. after a
restart; 405 or 501: it does not say, so drift is not checked)."""

from __future__ import annotations

import hashlib
import hmac
import json

import httpx

from governance.crypto import decrypt
from governance.desired_state import canonical_json, content_sha256
from governance.gateways.base import Adapter, ApplyResult, Observation, Revision, describe, http, redact


def signature(body: bytes, ingest_token: str) -> str:
    return "sha256=" + hmac.new(ingest_token.encode(), body, hashlib.sha256).hexdigest()


class GenericAdapter(Adapter):
    def _url(self) -> str:
        return f"{self.base_url}/bursar/config"

    def apply(self, revision: Revision) -> ApplyResult:
        token = decrypt(self.node.ingest_token_encrypted)
        if not token:
            return ApplyResult(
                ok=False, error="no stored ingest token to sign with (registered before config push): rotate its token"
            )
        headers = {
            "Content-Type": "application/json",
            "X-Bursar-Version": str(revision.version),
            "X-Bursar-Signature": signature(revision.body, token),
        }
        try:
            response = http().put(self._url(), content=revision.body, headers=headers, timeout=self.timeout)
        except httpx.HTTPError as exc:
            return ApplyResult(ok=False, error=describe(exc))
        if 200 <= response.status_code < 300:
            return ApplyResult(ok=True, status_code=response.status_code, changes=1)
        return ApplyResult(
            ok=False,
            status_code=response.status_code,
            error=redact(f"HTTP {response.status_code}: {response.text[:200]}"),
        )

    def observe(self, revision: Revision) -> Observation:
        try:
            response = http().get(self._url(), timeout=self.timeout)
        except httpx.HTTPError as exc:
            return Observation(in_sync=False, detail=describe(exc))
        if response.status_code in (405, 501):
            return Observation(in_sync=None, detail="the gateway does not report its config")
        if response.status_code == 404:
            return Observation(in_sync=False, detail="the gateway holds no config (restarted?)")
        if response.status_code != 200:
            return Observation(in_sync=False, detail=f"HTTP {response.status_code}")
        try:
            held = json.loads(response.content)
            content = {"virtual_keys": held["virtual_keys"]}
        except (ValueError, KeyError, TypeError):
            return Observation(in_sync=False, detail="the gateway answered something that is not a config document")
        if content_sha256(canonical_json(content)) == revision.sha256:
            return Observation(in_sync=True)
        return Observation(in_sync=False, detail=f"holds version {held.get('version')!r}, not {revision.version}")

"""Who is making a change, as recorded in the audit log."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from governance.models import ApiToken
from governance.models.audit import AuditVia


@dataclass(frozen=True)
class Actor:
    label: str
    via: str
    user_id: int | None = None
    api_token_id: int | None = None
    ip: str | None = None

    @classmethod
    def command(cls, name: str) -> Actor:
        return cls(label=f"command:{name}", via=AuditVia.COMMAND)

    @classmethod
    def system(cls, name: str) -> Actor:
        return cls(label=f"system:{name}", via=AuditVia.SYSTEM)


def _normalised_ip(value: str | None) -> str | None:
    """The canonical form the database will store (and the audit hash must cover)."""
    try:
        return ipaddress.ip_address(value).compressed if value else None
    except ValueError:
        return None


def client_ip(request: Any) -> str | None:
    """The caller's address: REMOTE_ADDR, or behind ``TRUSTED_PROXY_COUNT`` proxies the
    address they saw (the rule allauth's sign-in limits use, so both agree)."""
    from allauth.account.adapter import get_adapter
    from django.core.exceptions import PermissionDenied

    try:
        ip: str = get_adapter(request).get_client_ip(request)
    except PermissionDenied:
        return None
    return ip


def actor_from_request(request: Any, *, via: str) -> Actor:
    """The actor behind an HTTP request: its API token if it used one, else its user."""
    ip = _normalised_ip(client_ip(request))
    auth = getattr(request, "auth", None)
    if isinstance(auth, ApiToken):
        return Actor(label=f"token:{auth.name}", via=via, user_id=auth.user_id, api_token_id=auth.pk, ip=ip)
    user = request.user
    return Actor(label=f"user:{user.get_username()}", via=via, user_id=user.pk, ip=ip)

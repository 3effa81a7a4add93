"""Writes for API tokens (``bsr_…``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.contrib.auth.models import User
from django.db import transaction

from bursar.errors import InvalidInput
from governance.actors import Actor
from governance.models import ApiToken, Role
from governance.permissions import roles_of_user
from governance.secrets import generate_secret
from governance.services._changes import lock_for_update
from governance.services.audit import record_audit, snapshot

TOKEN_FIELDS = ("name", "prefix", "role", "user", "expires_at", "revoked_at")
# last_used_at is written at most this often per token, not on every request.
LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class IssuedApiToken:
    token: ApiToken
    secret: str


@transaction.atomic
def create_api_token(
    *,
    actor: Actor,
    name: str,
    role: str,
    now: datetime,
    user: User | None = None,
    expires_at: datetime | None = None,
) -> IssuedApiToken:
    """Create an API token; the returned secret is the only copy there will ever be.

    Side effects: one ApiToken row, one AuditEntry.
    """
    if role not in Role.values:
        raise InvalidInput(f"{role!r} is not a role; use one of {', '.join(Role.values)}", field="role")
    if not name.strip():
        raise InvalidInput("must not be blank", field="name")
    if user is not None and role not in roles_of_user(user):
        raise InvalidInput(
            f"{user.get_username()} does not hold the {role} role; a token cannot exceed its owner", field="role"
        )
    if expires_at is not None and expires_at <= now:
        raise InvalidInput("must be in the future", field="expires_at")
    secret = generate_secret("bsr_")
    token = ApiToken.objects.create(
        name=name.strip(), prefix=secret.prefix, token_sha256=secret.sha256, role=role, user=user, expires_at=expires_at
    )
    record_audit(
        actor=actor, action="api_token.create", instance=token, before=None, after=snapshot(token, TOKEN_FIELDS)
    )
    return IssuedApiToken(token=token, secret=secret.value)


@transaction.atomic
def revoke_api_token(*, actor: Actor, token: ApiToken, now: datetime) -> ApiToken:
    """Revoke a token; revoking twice changes nothing.

    Side effects: updates the ApiToken row; one AuditEntry on the first revoke.
    """
    lock_for_update(token)
    if token.revoked_at is not None:
        return token
    before = snapshot(token, TOKEN_FIELDS)
    token.revoked_at = now
    token.save(update_fields=["revoked_at"])  # the row is locked above
    record_audit(
        actor=actor, action="api_token.revoke", instance=token, before=before, after=snapshot(token, TOKEN_FIELDS)
    )
    return token


def mark_api_token_used(*, token: ApiToken, now: datetime) -> None:
    """Record that a token was used, at most once per LAST_USED_RESOLUTION.

    Side effects: a conditional UPDATE of ApiToken.last_used_at (not audited: not a change).
    """
    if token.last_used_at is not None and now - token.last_used_at < LAST_USED_RESOLUTION:
        return
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    token.last_used_at = now

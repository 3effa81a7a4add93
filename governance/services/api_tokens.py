"""Writes for API tokens (``bsr_…``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.contrib.auth.models import User
from django.db import transaction

from bursar.errors import InvalidInput
from governance.actors import Actor
from governance.models import ApiToken, Customer, Team
from governance.permissions import Grant, grants_of_user, token_grant
from governance.secrets import generate_secret
from governance.services._changes import lock_for_update
from governance.services.audit import record_audit, snapshot
from governance.services.users import validate_grant

TOKEN_FIELDS = ("name", "prefix", "role", "customers", "teams", "user", "expires_at", "revoked_at")
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
    customers: Sequence[Customer] = (),
    teams: Sequence[Team] = (),
) -> IssuedApiToken:
    """Create an API token with one role, limited to ``customers`` and ``teams`` when given;
    the returned secret is the only copy there will ever be. A user's token can never see
    more than the user.

    Side effects: one ApiToken row, one AuditEntry.
    """
    validate_grant(role, customers, teams)
    if not name.strip():
        raise InvalidInput("must not be blank", field="name")
    if len(name.strip()) > 200:
        raise InvalidInput("must be at most 200 characters", field="name")
    if user is not None:
        _check_within_owner(user, Grant.of(role, (c.pk for c in customers), (t.pk for t in teams)))
    if expires_at is not None and expires_at <= now:
        raise InvalidInput("must be in the future", field="expires_at")
    secret = generate_secret("bsr_")
    token = ApiToken.objects.create(
        name=name.strip(),
        prefix=secret.prefix,
        token_sha256=secret.sha256,
        role=role,
        user=user,
        expires_at=expires_at,
        scoped=bool(customers or teams),
    )
    token.customers.set(customers)
    token.teams.set(teams)
    record_audit(
        actor=actor, action="api_token.create", instance=token, before=None, after=snapshot(token, TOKEN_FIELDS)
    )
    return IssuedApiToken(token=token, secret=secret.value)


def _check_within_owner(user: User, wanted: Grant) -> None:
    owner = next((g for g in grants_of_user(user, cached=False) if g.role == wanted.role), None)
    if owner is None:
        raise InvalidInput(
            f"{user.get_username()} does not hold the {wanted.role} role; a token cannot exceed its owner", field="role"
        )
    if owner.scoped:
        bounded = token_grant(ApiToken(role=wanted.role, user_id=user.pk), own=wanted)
        if bounded is None or (wanted.scoped and bounded != wanted):
            raise InvalidInput(
                f"{user.get_username()}'s {wanted.role} role is limited to fewer customers or teams", field="teams"
            )


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

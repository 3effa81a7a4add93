"""Writes for users and their roles (invitations and SSO come with the sign-in issue)."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser
from django.db import IntegrityError, transaction

from bursar.errors import Conflict, InvalidInput
from governance.actors import Actor
from governance.models import Role, RoleGrant
from governance.services.audit import record_audit

USER_FIELDS = ("username", "email", "is_active", "is_staff", "is_superuser")


@transaction.atomic
def create_user(*, actor: Actor, username: str, email: str, password: str | None, role: str) -> AbstractUser:
    """Create a user holding ``role``; admins also get Django admin access.

    Side effects: one User row, one RoleGrant row, one AuditEntry (never the password).
    """
    if role not in Role.values:
        raise InvalidInput(f"{role!r} is not a role; use one of {', '.join(Role.values)}", field="role")
    is_admin = role == Role.ADMIN
    try:
        with transaction.atomic():
            user = get_user_model().objects.create_user(
                username=username, email=email, password=password, is_staff=is_admin, is_superuser=is_admin
            )
    except IntegrityError:
        raise Conflict(f"a user named {username!r} already exists", field="username") from None
    RoleGrant.objects.create(user=user, role=role)
    after = {"username": username, "email": email, "role": role}
    record_audit(actor=actor, action="user.create", instance=user, before=None, after=after)
    return user


@transaction.atomic
def grant_role(*, actor: Actor, user: AbstractUser, role: str) -> RoleGrant:
    """Give a user a role; granting one it holds changes nothing.

    Side effects: one RoleGrant row and one AuditEntry when the role is new.
    """
    if role not in Role.values:
        raise InvalidInput(f"{role!r} is not a role; use one of {', '.join(Role.values)}", field="role")
    grant, created = RoleGrant.objects.get_or_create(user=user, role=role)
    if created:
        record_audit(
            actor=actor, action="role.grant", instance=grant, before=None, after={"user": user.pk, "role": role}
        )
    return grant


@transaction.atomic
def revoke_role(*, actor: Actor, grant: RoleGrant) -> None:
    """Take a role away from a user.

    Side effects: deletes the RoleGrant row; one AuditEntry.
    """
    record_audit(
        actor=actor,
        action="role.revoke",
        instance=grant,
        before={"user": grant.user_id, "role": grant.role},
        after=None,
    )
    grant.delete()

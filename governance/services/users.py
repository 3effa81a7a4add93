"""Writes for users, their role grants and invitations. Every change is audited in its
own transaction; passwords and invitation secrets never reach the log."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import Q

from bursar.errors import Conflict, InvalidInput
from governance.actors import Actor
from governance.models import Customer, Invitation, Role, RoleGrant, Team
from governance.permissions import check_scope
from governance.secrets import generate_secret, sha256_hex
from governance.services._changes import lock_for_update
from governance.services.audit import record_audit

USER_FIELDS = ("username", "email", "is_active")
INVITATION_LIFETIME = timedelta(days=7)


def _role(role: str) -> str:
    if role not in Role.values:
        raise InvalidInput(f"{role!r} is not a role; use one of {', '.join(Role.values)}", field="role")
    return role


def validate_grant(role: str, customers: Sequence[Customer], teams: Sequence[Team]) -> None:
    """Refuse a role and scope that do not fit together (see ``permissions.check_scope``)."""
    _role(role)
    refusal = check_scope(role, customer_ids=[c.pk for c in customers], team_ids=[t.pk for t in teams])
    if refusal:
        raise InvalidInput(refusal, field="teams" if role == Role.TEAM_LEAD else "customers")


def email_domain_refusal(email: str) -> str | None:
    """Why ``email`` is outside ``ALLOWED_EMAIL_DOMAINS`` (None when it is allowed)."""
    allowed = settings.ALLOWED_EMAIL_DOMAINS
    domain = email.rpartition("@")[2].lower()
    if allowed and domain not in allowed:
        return f"{domain or email!r} is not an allowed email domain ({', '.join(allowed)})"
    return None


def grant_snapshot(grant: RoleGrant | Invitation) -> dict[str, object]:
    return {
        "role": grant.role,
        "scoped": grant.scoped,
        "customers": sorted(grant.customers.values_list("pk", flat=True)) if grant.pk else [],
        "teams": sorted(grant.teams.values_list("pk", flat=True)) if grant.pk else [],
    }


def _user_snapshot(user: AbstractUser) -> dict[str, object]:
    return {"username": user.get_username(), "email": user.email, "is_active": user.is_active}


def record_user_created(*, actor: Actor, user: AbstractUser) -> None:
    """The audit entry of a new account, however it came (admin, invitation, SSO).

    Side effects: one AuditEntry (never the password); runs in the creating transaction.
    """
    record_audit(actor=actor, action="user.create", instance=user, before=None, after=_user_snapshot(user))


@transaction.atomic
def create_user(
    *,
    actor: Actor,
    username: str,
    email: str,
    password: str | None,
    role: str,
    customers: Sequence[Customer] = (),
    teams: Sequence[Team] = (),
) -> AbstractUser:
    """Create a user holding ``role`` (with its scope); admins also get Django admin access.

    Side effects: one User row, one RoleGrant row, AuditEntries (never the password).
    """
    validate_grant(role, customers, teams)
    if email and get_user_model().objects.filter(email__iexact=email).exists():
        raise Conflict(f"{email} already has an account", field="email")
    try:
        with transaction.atomic():
            user = get_user_model().objects.create_user(username=username, email=email, password=password)
    except IntegrityError:
        raise Conflict(f"a user named {username!r} already exists", field="username") from None
    if password is None:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    record_user_created(actor=actor, user=user)
    set_grant(actor=actor, user=user, role=role, customers=customers, teams=teams)
    return user


@transaction.atomic
def set_grant(
    *,
    actor: Actor,
    user: AbstractUser,
    role: str,
    customers: Sequence[Customer] = (),
    teams: Sequence[Team] = (),
    scoped: bool | None = None,
) -> RoleGrant:
    """Give a user a role with this scope, or change the scope of the role it holds.
    ``scoped`` defaults to whether customers or teams are named; a scoped grant left with
    none (they were deleted) is refused rather than widened to the organisation. The admin
    role also opens the Django admin (staff and superuser), and revoking it closes it.

    Side effects: one RoleGrant row created or re-scoped; one AuditEntry when it changed.
    """
    if scoped is None:
        scoped = bool(customers or teams)
    if scoped and not (customers or teams):
        raise InvalidInput("the customers and teams this role was limited to no longer exist", field="customers")
    validate_grant(role, customers, teams)
    grant, created = RoleGrant.objects.get_or_create(user=user, role=role, defaults={"scoped": scoped})
    before = None if created else grant_snapshot(grant)
    if grant.scoped != scoped:
        grant.scoped = scoped
        grant.save(update_fields=["scoped"])
    grant.customers.set(customers)
    grant.teams.set(teams)
    if role == Role.ADMIN and not (user.is_staff and user.is_superuser):
        user.is_staff = user.is_superuser = True
        user.save(update_fields=["is_staff", "is_superuser"])
    after = grant_snapshot(grant)
    if before != after:
        action = "role.grant" if created else "role.change"
        record_audit(actor=actor, action=action, instance=grant, before=before, after={"user": user.pk, **after})
    return grant


@transaction.atomic
def revoke_role(*, actor: Actor, grant: RoleGrant) -> None:
    """Take a role away from a user. Nobody takes the admin role from themselves, and the
    last active admin keeps it.

    Side effects: deletes the RoleGrant row; one AuditEntry.
    """
    if grant.role == Role.ADMIN:
        if actor.user_id == grant.user_id:
            raise InvalidInput("you cannot take the admin role from yourself; ask another admin", field="role")
        _keep_an_admin(without=grant.user_id)
    before = {"user": grant.user_id, **grant_snapshot(grant)}
    record_audit(actor=actor, action="role.revoke", instance=grant, before=before, after=None)
    if grant.role == Role.ADMIN:  # superusers are admins: the flag goes with the grant
        get_user_model().objects.filter(pk=grant.user_id).update(is_staff=False, is_superuser=False)
    grant.delete()


def _keep_an_admin(*, without: int) -> None:
    """Refuse a change that would leave no active admin (only a shell could undo it)."""
    admins = (
        get_user_model()
        .objects.filter(is_active=True)
        .filter(Q(is_superuser=True) | Q(role_grants__role=Role.ADMIN))
        .exclude(pk=without)
    )
    if not admins.exists():
        raise Conflict("this would leave no active admin; make someone else an admin first", field="role")


@transaction.atomic
def set_user_active(*, actor: Actor, user: AbstractUser, active: bool) -> AbstractUser:
    """Deactivate (sign-in refused, sessions and API tokens stop working) or reactivate.
    Nobody deactivates themselves, and the last active admin stays active.

    Side effects: updates the User row; one AuditEntry when it changed.
    """
    if not active and actor.user_id == user.pk:
        raise InvalidInput("you cannot deactivate your own account; ask another admin", field="is_active")
    lock_for_update(user)
    if user.is_active == active:
        return user
    if not active and (user.is_superuser or RoleGrant.objects.filter(user_id=user.pk, role=Role.ADMIN).exists()):
        _keep_an_admin(without=user.pk)
    before = _user_snapshot(user)
    user.is_active = active
    user.save(update_fields=["is_active"])
    action = "user.reactivate" if active else "user.deactivate"
    record_audit(actor=actor, action=action, instance=user, before=before, after=_user_snapshot(user))
    return user


# --- invitations --------------------------------------------------------------------------


@dataclass(frozen=True)
class IssuedInvitation:
    invitation: Invitation
    secret: str  # goes into the link; only its SHA-256 is stored

    def path(self) -> str:
        return f"/invitations/{self.secret}/"


@transaction.atomic
def invite(
    *,
    actor: Actor,
    email: str,
    role: str,
    now: datetime,
    customers: Sequence[Customer] = (),
    teams: Sequence[Team] = (),
    base_url: str = "",
) -> IssuedInvitation:
    """Invite ``email`` to hold ``role``; the link works once, for INVITATION_LIFETIME.

    Side effects: one Invitation row, one AuditEntry (never the secret), one email after
    commit when ``base_url`` is given.
    """
    email = get_user_model().objects.normalize_email(email.strip())
    if "@" not in email or len(email) > 254:
        raise InvalidInput("must be an email address of at most 254 characters", field="email")
    refusal = email_domain_refusal(email)
    if refusal:
        raise InvalidInput(refusal, field="email")
    validate_grant(role, customers, teams)
    if get_user_model().objects.filter(email__iexact=email).exists():
        raise Conflict(f"{email} already has an account; grant it a role instead", field="email")
    _supersede(actor=actor, email=email, now=now)
    secret = generate_secret("inv_", display_chars=4)
    invitation = Invitation.objects.create(
        email=email,
        role=role,
        token_sha256=secret.sha256,
        invited_by_id=actor.user_id,
        expires_at=now + INVITATION_LIFETIME,
        scoped=bool(customers or teams),
    )
    invitation.customers.set(customers)
    invitation.teams.set(teams)
    after = {"email": email, "expires_at": invitation.expires_at.isoformat(), **grant_snapshot(invitation)}
    record_audit(actor=actor, action="invitation.create", instance=invitation, before=None, after=after)
    issued = IssuedInvitation(invitation, secret.value)
    if base_url:
        link = base_url.rstrip("/") + issued.path()
        transaction.on_commit(
            lambda: send_mail(
                "You are invited to Bursar",
                f"{actor.label.removeprefix('user:')} invited you to Bursar as {role}.\n\n"
                f"Accept within {INVITATION_LIFETIME.days} days: {link}\n",
                None,
                [email],
                fail_silently=True,
            )
        )
    return issued


def _supersede(*, actor: Actor, email: str, now: datetime, keep: Invitation | None = None) -> None:
    """Revoke an email's other pending invitations: one link per person at a time."""
    others = Invitation.objects.filter(
        email__iexact=email, accepted_at__isnull=True, revoked_at__isnull=True, expires_at__gt=now
    )
    if keep is not None:
        others = others.exclude(pk=keep.pk)
    for other in others:
        revoke_invitation(actor=actor, invitation=other, now=now)


@transaction.atomic
def revoke_invitation(*, actor: Actor, invitation: Invitation, now: datetime) -> Invitation:
    """Withdraw a pending invitation; its link stops working.

    Side effects: updates the Invitation row; one AuditEntry when it was pending.
    """
    lock_for_update(invitation)
    if invitation.state(now) != "pending":
        return invitation
    invitation.revoked_at = now
    invitation.save(update_fields=["revoked_at"])
    record_audit(
        actor=actor,
        action="invitation.revoke",
        instance=invitation,
        before={"state": "pending"},
        after={"state": "revoked"},
    )
    return invitation


def pending_invitation(*, secret: str | None = None, email: str | None = None, now: datetime) -> Invitation | None:
    """The pending invitation behind a link's secret, or the newest one for an email."""
    found = Invitation.objects.filter(accepted_at__isnull=True, revoked_at__isnull=True, expires_at__gt=now)
    if secret is not None:
        return found.filter(token_sha256=sha256_hex(secret)).first()
    if email:
        return found.filter(email__iexact=email).order_by("-created_at").first()
    return None


@transaction.atomic
def accept_invitation(
    *, invitation: Invitation, now: datetime, username: str, password: str | None, ip: str | None = None
) -> AbstractUser:
    """Create the invited user (a local password, or none for an SSO sign-in) and its grant.

    Side effects: one User row, one RoleGrant, the Invitation marked accepted, AuditEntries.
    """
    lock_for_update(invitation)
    if invitation.state(now) != "pending":
        raise Conflict(f"this invitation is {invitation.state(now)}", field="invitation")
    if password is not None:
        try:
            validate_password(password, get_user_model()(username=username, email=invitation.email))
        except ValidationError as error:
            raise InvalidInput(" ".join(error.messages), field="password") from None
    if get_user_model().objects.filter(email__iexact=invitation.email).exists():
        raise Conflict(f"{invitation.email} already has an account: sign in instead", field="invitation")
    try:
        with transaction.atomic():
            user = get_user_model().objects.create_user(username=username, email=invitation.email, password=password)
    except IntegrityError:
        raise Conflict(f"a user named {username!r} already exists", field="username") from None
    actor = Actor(label=f"user:{username}", via="ui", user_id=user.pk, ip=ip)
    record_user_created(actor=actor, user=user)
    grant_invited_role(actor=actor, invitation=invitation, user=user, now=now)
    return user


@transaction.atomic
def grant_invited_role(*, actor: Actor, invitation: Invitation, user: AbstractUser, now: datetime) -> None:
    """An invited email's first SSO sign-in: the new user takes the invitation's role.

    Side effects: one RoleGrant, the Invitation marked accepted, AuditEntries.
    """
    lock_for_update(invitation)
    if invitation.state(now) != "pending":
        raise Conflict(f"this invitation is {invitation.state(now)}", field="invitation")
    customers, teams = list(invitation.customers.all()), list(invitation.teams.all())
    set_grant(actor=actor, user=user, role=invitation.role, customers=customers, teams=teams, scoped=invitation.scoped)
    _mark_accepted(invitation, user=user, now=now, actor=actor)
    _supersede(actor=actor, email=invitation.email, now=now, keep=invitation)


def _mark_accepted(invitation: Invitation, *, user: AbstractUser, now: datetime, actor: Actor) -> None:
    invitation.accepted_at = now
    invitation.accepted_by_id = user.pk
    invitation.save(update_fields=["accepted_at", "accepted_by"])
    record_audit(
        actor=actor,
        action="invitation.accept",
        instance=invitation,
        before={"state": "pending"},
        after={"state": "accepted", "user": user.pk},
    )


def scope_objects(customer_ids: Iterable[int], team_ids: Iterable[int]) -> tuple[list[Customer], list[Team]]:
    """Customers and teams by id, refusing ids that do not exist."""
    customer_ids, team_ids = sorted(set(customer_ids)), sorted(set(team_ids))
    customers = list(Customer.objects.filter(pk__in=customer_ids))
    teams = list(Team.objects.filter(pk__in=team_ids))
    if len(customers) != len(customer_ids):
        missing = set(customer_ids) - {c.pk for c in customers}
        raise InvalidInput(f"no customer with id {sorted(missing)[0]}", field="customers")
    if len(teams) != len(team_ids):
        missing = set(team_ids) - {t.pk for t in teams}
        raise InvalidInput(f"no team with id {sorted(missing)[0]}", field="teams")
    return customers, teams

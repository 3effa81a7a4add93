from datetime import datetime

from django.conf import settings
from django.db import models


class Role(models.TextChoices):
    ADMIN = "admin"
    FINANCE = "finance"
    TEAM_LEAD = "team_lead"
    VIEWER = "viewer"


# Which roles take a scope, and whether it is required: a team lead leads named teams; a
# viewer may be limited to customers or teams; admins and finance see the whole organisation.
SCOPED_ROLES = frozenset({Role.TEAM_LEAD, Role.VIEWER})


class RoleGrant(models.Model):
    """A role held by a signed-in user, optionally limited to customers and teams (empty
    scope: the whole organisation). Superusers are admins without a grant. A user holds at
    most one grant per role; its scope lists every customer and team it covers."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="role_grants")
    role = models.CharField(max_length=16, choices=Role.choices)
    customers = models.ManyToManyField("governance.Customer", blank=True, related_name="+")
    teams = models.ManyToManyField("governance.Team", blank=True, related_name="+")
    # Written with the scope: a scope whose customers and teams were all deleted since then
    # sees nothing, never (as an empty scope would read) the whole organisation.
    scoped = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "role"], name="role_grant_user_role_uniq")]

    def __str__(self) -> str:
        return f"{self.user} is {self.role}"


class ApiToken(models.Model):
    """A bearer token (``bsr_…``) for automation. Only its SHA-256 is stored. It carries one
    role and, like a grant, an optional scope of customers and teams."""

    name = models.CharField(max_length=200)
    prefix = models.CharField(max_length=16)
    token_sha256 = models.CharField(max_length=64, unique=True)
    role = models.CharField(max_length=16, choices=Role.choices)
    customers = models.ManyToManyField("governance.Customer", blank=True, related_name="+")
    teams = models.ManyToManyField("governance.Team", blank=True, related_name="+")
    # Written with the scope: a scope whose customers and teams were all deleted since then
    # sees nothing, never (as an empty scope would read) the whole organisation.
    scoped = models.BooleanField(default=False)
    # A token belongs to a user, or (user empty) to a service identity named by ``name``.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="api_tokens"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…, {self.role})"


class Invitation(models.Model):
    """An admin's invitation of an email address, with the role (and scope) it will hold.

    The link carries a secret; only its SHA-256 is stored. Accepting it (a local password,
    or the first SSO sign-in with that verified email) creates the user and the grant."""

    email = models.EmailField()
    role = models.CharField(max_length=16, choices=Role.choices)
    customers = models.ManyToManyField("governance.Customer", blank=True, related_name="+")
    teams = models.ManyToManyField("governance.Team", blank=True, related_name="+")
    # Written with the scope: a scope whose customers and teams were all deleted since then
    # sees nothing, never (as an empty scope would read) the whole organisation.
    scoped = models.BooleanField(default=False)
    token_sha256 = models.CharField(max_length=64, unique=True)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["email"], name="invitation_email")]

    def __str__(self) -> str:
        return f"invitation of {self.email} as {self.role}"

    def state(self, now: datetime) -> str:
        if self.accepted_at is not None:
            return "accepted"
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at <= now:
            return "expired"
        return "pending"

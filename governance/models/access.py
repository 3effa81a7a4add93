from django.conf import settings
from django.db import models


class Role(models.TextChoices):
    ADMIN = "admin"
    FINANCE = "finance"
    VIEWER = "viewer"


class RoleGrant(models.Model):
    """A role held by a signed-in user. Superusers are admins without a grant."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="role_grants")
    role = models.CharField(max_length=16, choices=Role.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "role"], name="role_grant_user_role_uniq")]

    def __str__(self) -> str:
        return f"{self.user} is {self.role}"


class ApiToken(models.Model):
    """A bearer token (``bsr_…``) for automation. Only its SHA-256 is stored."""

    name = models.CharField(max_length=200)
    prefix = models.CharField(max_length=16)
    token_sha256 = models.CharField(max_length=64, unique=True)
    role = models.CharField(max_length=16, choices=Role.choices)
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

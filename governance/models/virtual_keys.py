from datetime import datetime

from django.db import models

from governance.models.organization import Customer, Team


class VirtualKeyStatus(models.TextChoices):
    ACTIVE = "active"
    BLOCKED = "blocked"
    REVOKED = "revoked"
    EXPIRED = "expired"


class VirtualKey(models.Model):
    """A key the gateways accept. Only the SHA-256 of its secret is stored.

    ``public_id`` is stable for the key's life (gateways and events name the key by it);
    ``secret_prefix`` shows which secret is current and changes on rotation.
    """

    public_id = models.CharField(max_length=32, unique=True)
    name = models.CharField(max_length=200)
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.PROTECT, related_name="virtual_keys")
    customer = models.ForeignKey(Customer, null=True, blank=True, on_delete=models.PROTECT, related_name="virtual_keys")
    secret_prefix = models.CharField(max_length=16)
    secret_sha256 = models.CharField(max_length=64, unique=True)
    # After a rotation the previous secret keeps working until this instant.
    previous_secret_sha256 = models.CharField(max_length=64, blank=True, default="", db_index=True)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True)
    # Gateways whose API needs the key itself to provision it (LiteLLM's /key/generate)
    # get it from this encrypted copy; it is never shown, logged or audited.
    secret_encrypted = models.TextField(blank=True, default="")
    # SHA-256 of the key as a LiteLLM fleet holds it ("sk-" + secret): LiteLLM's callbacks
    # name the key by it (user_api_key_hash), so ingest attributes those events.
    litellm_sha256 = models.CharField(max_length=64, blank=True, default="", db_index=True)
    previous_litellm_sha256 = models.CharField(max_length=64, blank=True, default="", db_index=True)
    previous_secret_encrypted = models.TextField(blank=True, default="")
    allowed_models = models.JSONField(default=list, blank=True)
    requests_per_minute = models.PositiveIntegerField(null=True, blank=True)
    tokens_per_minute = models.PositiveIntegerField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=VirtualKeyStatus.choices, default=VirtualKeyStatus.ACTIVE)
    # Budgets whose hard cap currently blocks this key (kept by the budget logic).
    blocked_by = models.ManyToManyField("governance.Budget", blank=True, related_name="blocked_keys")
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    rotated_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["status", "expires_at"], name="virtual_key_status_expiry"),
            # The default list order; without it every page sorts the whole table.
            models.Index(fields=["-created_at", "-id"], name="virtual_key_newest_first"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.public_id})"

    def effective_status(self, now: datetime) -> str:
        """The status at ``now``: an active or blocked key past its expiry reads as expired
        even before the expiry sweeper has written it."""
        if (
            self.status in (VirtualKeyStatus.ACTIVE, VirtualKeyStatus.BLOCKED)
            and self.expires_at
            and self.expires_at <= now
        ):
            return VirtualKeyStatus.EXPIRED
        return self.status

from django.db import models


class GatewayNodeKind(models.TextChoices):
    GENERIC = "generic"
    BIFROST = "bifrost"
    LITELLM = "litellm"


class GatewayNode(models.Model):
    """One gateway replica: it sends events with its ingest token and receives config.

    Only the SHA-256 of the ingest token (``bsn_…``) is stored. The admin token Bursar
    uses to push config to the gateway must be usable, so it is encrypted, not hashed.
    """

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=16, choices=GatewayNodeKind.choices, default=GatewayNodeKind.GENERIC)
    base_url = models.URLField(max_length=500, blank=True, default="")
    admin_token_encrypted = models.TextField(blank=True, default="")
    ingest_token_prefix = models.CharField(max_length=16)
    ingest_token_sha256 = models.CharField(max_length=64, unique=True)
    # The generic push signs its body with the ingest token (api.md), so it is also kept
    # encrypted. Empty for a node registered before push existed: rotate its token.
    ingest_token_encrypted = models.TextField(blank=True, default="")
    last_seen_at = models.DateTimeField(null=True, blank=True)
    applied_version = models.PositiveBigIntegerField(null=True, blank=True)
    last_push_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    # Push bookkeeping: consecutive failures drive the backoff; the drift check records
    # what it saw; ``state`` holds adapter data (Bifrost ids of Bursar's keys, teams...).
    push_failures = models.PositiveIntegerField(default=0)
    next_push_at = models.DateTimeField(null=True, blank=True)
    last_checked_at = models.DateTimeField(null=True, blank=True)
    drift = models.TextField(blank=True, default="")
    state = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

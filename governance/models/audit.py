from django.conf import settings
from django.db import models


class AuditVia(models.TextChoices):
    UI = "ui"
    API = "api"
    COMMAND = "command"
    SYSTEM = "system"


class AuditEntry(models.Model):
    """One change, written in the same transaction as the change itself.

    Append-only and hash-chained: ``entry_hash`` covers this entry's content and the
    previous entry's hash, so editing or deleting any row breaks every hash after it.
    """

    at = models.DateTimeField()
    actor = models.CharField(max_length=200)
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_token = models.ForeignKey(
        "governance.ApiToken", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    via = models.CharField(max_length=16, choices=AuditVia.choices)
    ip = models.GenericIPAddressField(null=True, blank=True)
    action = models.CharField(max_length=100)
    object_type = models.CharField(max_length=100)
    object_id = models.CharField(max_length=64)
    object_repr = models.CharField(max_length=300)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    prev_hash = models.CharField(max_length=64)
    entry_hash = models.CharField(max_length=64, unique=True)

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "audit entries"
        indexes = [models.Index(fields=["object_type", "object_id"], name="audit_object")]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor} {self.action} {self.object_repr}"

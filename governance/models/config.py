from django.db import models

from governance.models.nodes import GatewayNode


class ConfigRevision(models.Model):
    """One rendering of the desired state that differed from the one before.

    ``version`` is the primary key: monotonic, never reused. ``document`` is the
    canonical JSON of the content (keys sorted, no spaces) and ``sha256`` its hash, so
    the same state always has the same hash. The document a gateway receives adds
    ``version`` and ``issued_at`` to it.
    """

    version = models.BigAutoField(primary_key=True)
    document = models.TextField()
    sha256 = models.CharField(max_length=64)
    reason = models.CharField(max_length=500)
    urgent = models.BooleanField(default=False)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-version"]

    def __str__(self) -> str:
        return f"config v{self.version} ({self.sha256[:12]})"


class ConfigRenderMark(models.Model):
    """A single row counting render requests and renders.

    A change that may alter the desired state increments ``requested`` in its own
    transaction; a render holds this row's lock, so it sees every request counted before
    it, and records that count in ``rendered``. ``requested > rendered`` means a render
    is owed (the converge pass catches up if its task was lost); a queued render whose
    request an earlier render already covered is skipped, so a burst makes one revision.
    """

    requested = models.BigIntegerField(default=0)
    rendered = models.BigIntegerField(default=0)
    rendered_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"rendered at {self.rendered_at}"


class ConfigPushAttempt(models.Model):
    """One delivery of one revision to one node (``apply``) or one drift check."""

    node = models.ForeignKey(GatewayNode, on_delete=models.CASCADE, related_name="push_attempts")
    version = models.PositiveBigIntegerField()
    action = models.CharField(max_length=16, default="apply")  # apply, repair
    at = models.DateTimeField()
    succeeded = models.BooleanField()
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    detail = models.TextField(blank=True, default="")  # for a repair: the drift it repaired
    duration_ms = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["node", "-at"], name="push_attempt_node_recent")]

    def __str__(self) -> str:
        return f"push v{self.version} to node {self.node_id}: {'ok' if self.succeeded else self.error[:60]}"

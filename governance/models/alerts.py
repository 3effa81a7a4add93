from django.db import models
from django.db.models import Q

from governance.models.budgets import Budget, BudgetPeriod, scope_matches_type
from governance.models.organization import Customer, Team


class AlertKind(models.TextChoices):
    SOFT = "soft"  # a soft threshold (percent of the amount) was crossed
    HARD = "hard"  # the amount was reached; a hard-capped budget blocks its keys
    FORECAST = "forecast"  # the period's burn rate projects past the amount
    RESET = "reset"  # a new period began and the keys the budget blocked are active again


class Alert(models.Model):
    """One firing of one kind (and threshold) for one budget period.

    Fired at most once per (period, kind, threshold): the partial unique constraint is
    the claim, so two workers crossing the same threshold cannot both create it. Raising
    the amount re-arms an alert (``rearmed_at``), which lets the threshold fire again.
    """

    budget = models.ForeignKey(Budget, on_delete=models.CASCADE, related_name="alerts")
    period = models.ForeignKey(BudgetPeriod, on_delete=models.CASCADE, related_name="alerts")
    kind = models.CharField(max_length=16, choices=AlertKind.choices)
    # Percent of the amount: the soft threshold, 100 for hard and forecast, 0 for reset.
    threshold = models.PositiveSmallIntegerField()
    fired_at = models.DateTimeField()
    spent = models.DecimalField(max_digits=20, decimal_places=10)
    limit = models.DecimalField(max_digits=20, decimal_places=4)
    # Forecast alerts: when the burn rate so far reaches the amount.
    projected_at = models.DateTimeField(null=True, blank=True)
    message = models.TextField()
    rearmed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-fired_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["period", "kind", "threshold"], condition=Q(rearmed_at__isnull=True), name="alert_once_armed"
            )
        ]
        indexes = [models.Index(fields=["-fired_at", "-id"], name="alert_newest_first")]

    def __str__(self) -> str:
        return f"alert {self.pk}: budget {self.budget_id} {self.kind} {self.threshold}%"


class AlertChannelKind(models.TextChoices):
    WEBHOOK = "webhook"
    SLACK = "slack"
    EMAIL = "email"


class AlertChannel(models.Model):
    """Where alerts go. Global (``scope_type`` organization) or attached to a customer,
    team or key, in which case it receives the alerts of budgets on that scope and
    below it (a customer's channel hears about its teams' and keys' budgets).

    The webhook signing secret and the Slack webhook URL (itself a credential) are
    encrypted; ``target`` holds the URL or addresses, redacted for Slack.
    """

    name = models.CharField(max_length=200, blank=True, default="")
    kind = models.CharField(max_length=16, choices=AlertChannelKind.choices)
    target = models.CharField(max_length=1000)
    secret_encrypted = models.TextField(blank=True, default="")
    scope_type = models.CharField(max_length=16, default="organization")
    customer = models.ForeignKey(Customer, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    virtual_key = models.ForeignKey(
        "governance.VirtualKey", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(condition=scope_matches_type(), name="alert_channel_scope_matches_type"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} channel {self.pk} ({self.name or self.target})"

    @property
    def scope_id(self) -> int | None:
        return self.customer_id or self.team_id or self.virtual_key_id


class DeliveryState(models.TextChoices):
    PENDING = "pending"  # not yet sent, or failed and waiting for its next attempt
    DELIVERED = "delivered"
    FAILED = "failed"  # gave up after the last retry


class AlertDelivery(models.Model):
    """One alert to one channel; each try is an AlertDeliveryAttempt."""

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="deliveries")
    channel = models.ForeignKey(AlertChannel, on_delete=models.CASCADE, related_name="deliveries")
    state = models.CharField(max_length=16, choices=DeliveryState.choices, default=DeliveryState.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["alert", "channel"], name="alert_delivery_uniq")]
        indexes = [models.Index(fields=["state", "next_attempt_at"], name="alert_delivery_due")]

    def __str__(self) -> str:
        return f"delivery {self.pk}: alert {self.alert_id} → channel {self.channel_id} ({self.state})"


class AlertDeliveryAttempt(models.Model):
    delivery = models.ForeignKey(AlertDelivery, on_delete=models.CASCADE, related_name="attempt_log")
    number = models.PositiveSmallIntegerField()
    at = models.DateTimeField()
    succeeded = models.BooleanField()
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    duration_ms = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["delivery", "number"]
        constraints = [models.UniqueConstraint(fields=["delivery", "number"], name="alert_attempt_uniq")]

    def __str__(self) -> str:
        return f"attempt {self.number} of delivery {self.delivery_id}: {'ok' if self.succeeded else self.error}"

from datetime import datetime
from decimal import Decimal

from django.db import models
from django.db.models import Q

from governance.models.organization import Customer, Team, currency_validator


class BudgetScope(models.TextChoices):
    ORGANIZATION = "organization"
    CUSTOMER = "customer"
    TEAM = "team"
    VIRTUAL_KEY = "virtual_key"


class BudgetPeriodKind(models.TextChoices):
    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"
    QUARTERLY = "quarterly"
    YEARLY = "yearly"


def scope_matches_type() -> Q:
    """Exactly the foreign key the scope type names is set (none for the organization);
    budgets and alert channels attach to scopes alike."""
    return (
        Q(scope_type="organization", customer__isnull=True, team__isnull=True, virtual_key__isnull=True)
        | Q(scope_type="customer", customer__isnull=False, team__isnull=True, virtual_key__isnull=True)
        | Q(scope_type="team", customer__isnull=True, team__isnull=False, virtual_key__isnull=True)
        | Q(scope_type="virtual_key", customer__isnull=True, team__isnull=True, virtual_key__isnull=False)
    )


class Budget(models.Model):
    """A spending limit on one scope, per calendar period in the budget's timezone.

    The scope is a real foreign key (one of three, or none for the organization), so a
    budget can never point at something that does not exist.
    """

    scope_type = models.CharField(max_length=16, choices=BudgetScope.choices)
    customer = models.ForeignKey(Customer, null=True, blank=True, on_delete=models.PROTECT, related_name="budgets")
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.PROTECT, related_name="budgets")
    virtual_key = models.ForeignKey(
        "governance.VirtualKey", null=True, blank=True, on_delete=models.PROTECT, related_name="budgets"
    )
    amount = models.DecimalField(max_digits=20, decimal_places=4)
    currency = models.CharField(max_length=3, default="USD", validators=[currency_validator])
    period = models.CharField(max_length=16, choices=BudgetPeriodKind.choices, default=BudgetPeriodKind.MONTHLY)
    timezone = models.CharField(max_length=64, default="UTC")
    soft_thresholds = models.JSONField(default=list, blank=True)
    hard_cap = models.BooleanField(default=True)
    # A temporary override: ``override_amount`` is added to ``amount`` until the instant.
    override_amount = models.DecimalField(max_digits=20, decimal_places=4, null=True, blank=True)
    override_expires_at = models.DateTimeField(null=True, blank=True)
    override_reason = models.CharField(max_length=500, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="budget_amount_positive"),
            models.CheckConstraint(condition=scope_matches_type(), name="budget_scope_matches_type"),
        ]

    def __str__(self) -> str:
        return (
            f"budget {self.pk}: {self.amount} {self.currency} {self.period} on {self.scope_type} {self.scope_id or ''}"
        )

    @property
    def scope_id(self) -> int | None:
        return self.customer_id or self.team_id or self.virtual_key_id

    def scope_label(self) -> str:
        """``customer acme_corp``, ``team research``, ``key vk_… (name)`` or ``the organization``."""
        if self.scope_type == BudgetScope.CUSTOMER and self.customer is not None:
            return f"customer {self.customer.external_id}"
        if self.scope_type == BudgetScope.TEAM and self.team is not None:
            return f"team {self.team.slug}"
        if self.scope_type == BudgetScope.VIRTUAL_KEY and self.virtual_key is not None:
            return f"key {self.virtual_key.public_id} ({self.virtual_key.name})"
        return "the organization"

    def limit_at(self, now: datetime) -> Decimal:
        """The amount in force at ``now``: the base amount plus an unexpired override."""
        if self.override_amount and self.override_expires_at and self.override_expires_at > now:
            return self.amount + self.override_amount
        return self.amount


class BudgetPeriod(models.Model):
    """One period of one budget: explicit ``[start, end)`` UTC bounds and its own spend.

    Rows are created when spend first lands in a period and are never zeroed, so history
    stays. ``spent`` only moves by SQL increments from the ingest transaction.
    """

    budget = models.ForeignKey(Budget, on_delete=models.CASCADE, related_name="periods")
    start = models.DateTimeField()
    end = models.DateTimeField()
    spent = models.DecimalField(max_digits=20, decimal_places=10, default=0)

    class Meta:
        ordering = ["budget", "-start"]
        constraints = [models.UniqueConstraint(fields=["budget", "start"], name="budget_period_uniq")]

    def __str__(self) -> str:
        return f"budget {self.budget_id} {self.start:%Y-%m-%d}: {self.spent}"

from decimal import Decimal

from django.core.validators import RegexValidator
from django.db import models

currency_validator = RegexValidator(r"^[A-Z]{3}$", "Use a three-letter ISO 4217 code such as USD.")


class Customer(models.Model):
    """Who is billed: an organisation's own customer, named by the id the gateways send."""

    external_id = models.CharField(max_length=200, unique=True)
    name = models.CharField(max_length=200)
    currency = models.CharField(max_length=3, default="USD", validators=[currency_validator])
    markup_percent = models.DecimalField(max_digits=9, decimal_places=4, default=Decimal("0"))
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.CheckConstraint(condition=models.Q(markup_percent__gte=0), name="customer_markup_non_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.external_id})"


class Team(models.Model):
    """A group of people and keys; optionally working for one customer."""

    slug = models.SlugField(max_length=100, unique=True)
    name = models.CharField(max_length=200)
    customer = models.ForeignKey(Customer, null=True, blank=True, on_delete=models.PROTECT, related_name="teams")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug

from django.apps import AppConfig


class BillingConfig(AppConfig):
    """Price catalog, cost computation, spend rollups and statements (billing issues)."""

    name = "billing"
    verbose_name = "Billing"

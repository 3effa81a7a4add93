from django.apps import AppConfig


class BillingConfig(AppConfig):
    """Price catalog, cost computation, spend rollups and statements (billing issues)."""

    name = "billing"
    verbose_name = "Billing"

    def ready(self) -> None:
        from billing.receivers import on_budget_opened
        from governance.signals import budget_opened

        budget_opened.connect(on_budget_opened, dispatch_uid="billing.on_budget_opened")

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from django.utils import timezone

from governance.services.alerts import attempt_delivery, due_deliveries
from governance.services.enforcement import reconcile_budgets


class Command(BaseCommand):
    help = (
        "Bring key blocks in line with the budgets' current periods (what Celery beat runs every minute) "
        "and retry alert deliveries that are due. For setups without beat, e.g. the embedded default."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        result = reconcile_budgets(now=timezone.now())
        delivered = [
            attempt_delivery(delivery_id=pk, now=timezone.now()).state for pk in due_deliveries(now=timezone.now())
        ]
        self.stdout.write(
            f"{result.budgets} budgets checked: {result.blocked} keys blocked, {result.unblocked} unblocked, "
            f"{result.alerts} alerts fired; {len(delivered)} deliveries retried "
            f"({delivered.count('delivered')} delivered)"
        )

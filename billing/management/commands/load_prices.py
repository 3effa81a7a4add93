from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from billing.catalog import load_catalog
from billing.models import ModelPrice


class Command(BaseCommand):
    help = "Load the shipped price catalog (billing/catalog/prices.json); existing prices are kept."

    def handle(self, *args: Any, **options: Any) -> None:
        created = load_catalog(ModelPrice)
        self.stdout.write(f"{created} prices added; {ModelPrice.objects.count()} in the catalog")

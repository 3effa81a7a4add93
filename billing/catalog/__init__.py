"""The shipped price catalog (``prices.json``) and its loader.

The baseline catalog takes effect from ``CATALOG_BASELINE`` so that history already
stored is priced too; later price changes are new rows with a later ``effective_from``
(``POST /api/v1/prices/``), and the price in effect at an event's time wins.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

CATALOG_PATH = Path(__file__).with_name("prices.json")
CATALOG_BASELINE = datetime(2000, 1, 1, tzinfo=UTC)
RATE_FIELDS = (
    "input_per_million",
    "output_per_million",
    "cached_input_per_million",
    "cache_write_per_million",
    "per_image",
    "per_gpu_second",
    "per_request",
)
NULLABLE_RATES = {"cached_input_per_million", "cache_write_per_million"}


def read_catalog(path: Path = CATALOG_PATH) -> dict[str, Any]:
    with path.open() as file:
        data: dict[str, Any] = json.load(file)
    return data


def load_catalog(model_price: Any, *, path: Path = CATALOG_PATH, effective_from: datetime = CATALOG_BASELINE) -> int:
    """Create the catalog's prices that are not stored yet; returns how many were created.

    Takes the model class so a migration can pass its historical model.
    Side effects: ModelPrice rows.
    """
    catalog = read_catalog(path)
    source = f"{catalog['source']} (retrieved {catalog['retrieved']})"[:300]
    created = 0
    for entry in catalog["prices"]:
        rates = {}
        for field in RATE_FIELDS:
            value = entry.get(field)
            rates[field] = Decimal(value) if value is not None else (None if field in NULLABLE_RATES else Decimal(0))
        _, was_created = model_price.objects.get_or_create(
            provider=entry["provider"],
            model=entry["model"],
            effective_from=effective_from,
            defaults={"currency": catalog.get("currency", "USD"), "source": source, **rates},
        )
        created += was_created
    return created

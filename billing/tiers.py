"""Rollup tiers: the full hourly table and coarser ones, and which questions each answers.

Every tier is a sum of the same hourly rows (``billing.services.upsert_rollups`` writes
them all in one transaction), so a query may read whichever is smallest and still get
exactly the same figures.
"""

from __future__ import annotations

from dataclasses import dataclass

from billing.histogram import BUCKET_FIELDS
from billing.models import (
    UsageDailyByCustomer,
    UsageDailyByCustomerModel,
    UsageDailyByKey,
    UsageDailyByModel,
    UsageDailyByStage,
    UsageDailyByTeamModel,
    UsageHourlyByCustomer,
    UsageHourlyByModel,
    UsageSums,
)

# The hourly rollup's natural key, in the order rollup rows carry it.
ROLLUP_KEY = ("bucket", "customer_id", "team_id", "virtual_key_id", "provider", "model", "pipeline_stage")
# The additive measures every tier carries (UsageSums), in the order rollup rows carry them.
MEASURES = (
    "requests",
    "errors",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "images",
    "cost",
    "unpriced_requests",
    "cache_hits",
    "cache_savings",
    "fallbacks",
    "latency_count",
    "latency_sum_ms",
)
ROLLUP_SUMS = (*MEASURES, *BUCKET_FIELDS)
MONEY_MEASURES = frozenset({"cost", "cache_savings"})


@dataclass(frozen=True)
class Tier:
    """A coarser rollup: ``granularity`` buckets (UTC) and a subset of the dimensions."""

    model: type[UsageSums]
    granularity: str  # "hour" or "day"
    dimensions: frozenset[str]  # the usage API's group-by names this tier can answer
    key_columns: tuple[str, ...]
    hourly_positions: tuple[int, ...]  # where those columns sit in ROLLUP_KEY


def _tier(model: type[UsageSums], granularity: str, *columns: str) -> Tier:
    names = {
        "customer_id": "customer",
        "team_id": "team",
        "virtual_key_id": "virtual_key",
        "provider": "provider",
        "model": "model",
        "pipeline_stage": "pipeline_stage",
    }
    return Tier(
        model=model,
        granularity=granularity,
        dimensions=frozenset(names[column] for column in columns),
        key_columns=("bucket", *columns),
        hourly_positions=tuple(ROLLUP_KEY.index(column) for column in columns),
    )


# Smallest first: a query takes the first tier that holds every dimension it needs.
TIERS = (
    _tier(UsageDailyByStage, "day", "pipeline_stage"),
    _tier(UsageDailyByModel, "day", "provider", "model"),
    _tier(UsageDailyByCustomer, "day", "customer_id"),
    _tier(UsageHourlyByModel, "hour", "provider", "model"),
    _tier(UsageHourlyByCustomer, "hour", "customer_id"),
    _tier(UsageDailyByCustomerModel, "day", "customer_id", "provider", "model"),
    _tier(UsageDailyByKey, "day", "virtual_key_id"),
    _tier(UsageDailyByTeamModel, "day", "team_id", "customer_id", "provider", "model", "pipeline_stage"),
)

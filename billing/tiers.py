"""Rollup tiers: the hourly table and the coarser daily ones, and what each can answer."""

from __future__ import annotations

from dataclasses import dataclass

from billing.models import UsageDailyByCustomerModel, UsageDailyByModel, UsageSums

# The hourly rollup's natural key, in the order rollup rows carry it.
ROLLUP_KEY = ("bucket", "customer_id", "team_id", "virtual_key_id", "provider", "model", "pipeline_stage")


@dataclass(frozen=True)
class DailyTier:
    """A coarser rollup: whole UTC days and a subset of the hourly dimensions."""

    model: type[UsageSums]
    dimensions: frozenset[str]  # the usage API's group-by names this tier can answer
    key_columns: tuple[str, ...]
    hourly_positions: tuple[int, ...]  # where those columns sit in ROLLUP_KEY


# Smallest first: a query takes the first tier that holds every dimension it needs.
DAILY_TIERS = (
    DailyTier(UsageDailyByModel, frozenset({"provider", "model"}), ("bucket", "provider", "model"), (4, 5)),
    DailyTier(
        UsageDailyByCustomerModel,
        frozenset({"customer", "provider", "model"}),
        ("bucket", "customer_id", "provider", "model"),
        (1, 4, 5),
    ),
)

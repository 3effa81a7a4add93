"""Pricing an event from the catalog: which price applies, and what it costs.

Rules (``api.md``): an event's own cost wins; otherwise the price in effect at the
event's timestamp, the most specific model pattern first (exact name, then the longest
``prefix*``). Cached and cache-write tokens are part of ``input_tokens`` and are billed
at their own rates (the input rate when the catalog has none).
"""

from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from billing.models import ModelPrice

MILLION = Decimal(1_000_000)
ZERO = Decimal(0)
STORED_PLACES = Decimal("1e-10")


def stored_amount(amount: Decimal) -> Decimal:
    """An event's cost at the precision its column keeps (10 places), applied before the
    event, its rollups and its budget charge are written, so all three hold the same
    number. Not a billing rounding: statements round once, when finalised."""
    return amount.quantize(STORED_PLACES)


# Gateways name one vendor several ways; the catalog uses the first name.
PROVIDER_ALIASES: dict[str, str] = {
    "vertex": "google",
    "vertex_ai": "google",
    "gemini": "google",
    "google_genai": "google",
    "gcp.vertex_ai": "google",
    "gcp.gemini": "google",
    "mistralai": "mistral",
    "aws.bedrock.anthropic": "anthropic",
}


def catalog_provider(provider: str) -> str:
    return PROVIDER_ALIASES.get(provider.lower(), provider.lower())


@dataclass(slots=True)  # built once per event on the ingest path: no frozen-dataclass overhead
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    images: int = 0
    gpu_seconds: Decimal = ZERO
    is_success: bool = True

    @classmethod
    def of(cls, event: Any) -> Usage:
        """The billable quantities of an event (being ingested, or stored)."""
        return cls(
            input_tokens=event.input_tokens,
            output_tokens=event.output_tokens,
            cached_input_tokens=event.cached_input_tokens,
            cache_write_tokens=event.cache_write_tokens,
            images=event.images,
            gpu_seconds=event.gpu_seconds,
            is_success=event.status < 400,
        )


def compute_cost(price: ModelPrice, usage: Usage) -> Decimal:
    """Exact cost of ``usage`` at ``price``; never rounded (rounding happens on statements)."""
    uncached = max(usage.input_tokens - usage.cached_input_tokens - usage.cache_write_tokens, 0)
    cached_rate = (
        price.cached_input_per_million if price.cached_input_per_million is not None else price.input_per_million
    )
    write_rate = price.cache_write_per_million if price.cache_write_per_million is not None else price.input_per_million
    tokens = (
        uncached * price.input_per_million
        + usage.cached_input_tokens * cached_rate
        + usage.cache_write_tokens * write_rate
        + usage.output_tokens * price.output_per_million
    ) / MILLION
    cost = tokens + usage.images * price.per_image + usage.gpu_seconds * price.per_gpu_second
    if usage.is_success:
        cost += price.per_request
    return cost.normalize() if cost else ZERO


class PriceBook:
    """The catalog in memory, for matching a batch of events without a query each."""

    def __init__(self, prices: Iterable[ModelPrice]) -> None:
        # provider -> pattern -> (sorted effective_from list, prices in the same order)
        versions: dict[str, dict[str, list[ModelPrice]]] = defaultdict(lambda: defaultdict(list))
        for price in prices:
            versions[price.provider.lower()][price.model].append(price)
        self._patterns: dict[str, list[tuple[str, list[datetime], list[ModelPrice]]]] = {}
        for provider, by_model in versions.items():
            ordered = []
            for pattern, rows in by_model.items():
                rows.sort(key=lambda row: row.effective_from)
                ordered.append((pattern, [row.effective_from for row in rows], rows))
            # Exact names first, then longer prefixes before shorter ones.
            ordered.sort(key=lambda item: (item[0].endswith("*"), -len(item[0])))
            self._patterns[provider] = ordered
        self._candidates: dict[tuple[str, str], list[tuple[list[datetime], list[ModelPrice]]]] = {}

    def _candidates_for(self, provider: str, model: str) -> list[tuple[list[datetime], list[ModelPrice]]]:
        """The patterns matching (provider, model), most specific first; memoised, since a
        batch repeats the same few models thousands of times."""
        key = (provider, model)
        found = self._candidates.get(key)
        if found is None:
            found = []
            for name in dict.fromkeys((provider.lower(), catalog_provider(provider))):
                for pattern, starts, rows in self._patterns.get(name, ()):
                    if pattern == model or (pattern.endswith("*") and model.startswith(pattern[:-1])):
                        found.append((starts, rows))
            self._candidates[key] = found
        return found

    @classmethod
    def load(cls) -> PriceBook:
        return cls(ModelPrice.objects.all())

    def match(self, provider: str, model: str, at: datetime) -> ModelPrice | None:
        """The most specific price for (provider, model) in effect at ``at``."""
        for starts, rows in self._candidates_for(provider, model):
            position = bisect_right(starts, at)
            if position:
                return rows[position - 1]
        return None

"""The fixed latency histogram every rollup row carries.

Percentiles come from merging bucket counts across rows (cheap, independent of event
count) and interpolating inside the bucket that holds the rank: exact to within one
bucket's width, which is the usual trade of Prometheus-style histograms.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence

# Upper bounds in milliseconds; a last, open bucket holds everything slower.
LATENCY_BOUNDS_MS: tuple[int, ...] = (
    25, 50, 100, 200, 300, 500, 750, 1000, 1500, 2000,
    3000, 5000, 7500, 10000, 15000, 20000, 30000, 60000, 120000,
)  # fmt: skip
BUCKETS = len(LATENCY_BOUNDS_MS) + 1
BUCKET_FIELDS: tuple[str, ...] = tuple(f"latency_bucket_{index:02d}" for index in range(BUCKETS))


def bucket_index(latency_ms: int) -> int:
    return bisect_left(LATENCY_BOUNDS_MS, latency_ms)


def percentile(counts: Sequence[int], quantile: float) -> int | None:
    """The ``quantile`` (0 to 1) latency in ms from merged bucket counts; None when empty."""
    total = sum(counts)
    if total == 0:
        return None
    rank = quantile * total
    seen = 0
    for index, count in enumerate(counts):
        if count and seen + count >= rank:
            lower = LATENCY_BOUNDS_MS[index - 1] if index > 0 else 0
            if index >= len(LATENCY_BOUNDS_MS):
                return lower  # the open bucket: report its lower bound rather than invent one
            upper = LATENCY_BOUNDS_MS[index]
            return round(lower + (upper - lower) * (rank - seen) / count)
        seen += count
    return LATENCY_BOUNDS_MS[-1]

"""Plotly figures built from selector output, rendered as HTML fragments. plotly.js itself
is served from static files (``vendor/plotly.min.js``), never a CDN."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from decimal import Decimal
from typing import Any

import plotly.graph_objects as go

_CONFIG = {"displaylogo": False, "responsive": True, "modeBarButtonsToRemove": ["lasso2d", "select2d"]}
_LAYOUT = {
    "margin": {"l": 56, "r": 16, "t": 16, "b": 40},
    "height": 320,
    "paper_bgcolor": "rgba(0,0,0,0)",
    "plot_bgcolor": "rgba(0,0,0,0)",
    "legend": {"orientation": "h", "y": -0.2},
    "font": {"family": "system-ui, -apple-system, Segoe UI, sans-serif", "size": 12},
}
TOP_SERIES = 8  # more than this and a stacked chart is noise: the rest become "other"


def _html(figure: go.Figure, element_id: str) -> str:
    return str(
        figure.to_html(full_html=False, include_plotlyjs=False, config=_CONFIG, div_id=element_id, validate=False)
    )


def stacked_spend(rows: list[dict[str, Any]], dimension: str, *, element_id: str = "spend-chart") -> str:
    """Cost per bucket, stacked by ``dimension`` (top series, the rest as "other")."""
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for row in rows:
        totals[row.get(dimension) or "(none)"] += row["cost"]
    top = [name for name, _ in sorted(totals.items(), key=lambda item: -item[1])[:TOP_SERIES]]
    series: dict[str, dict[datetime, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    buckets = sorted({row["bucket"] for row in rows})
    for row in rows:
        name = row.get(dimension) or "(none)"
        series[name if name in top else "other"][row["bucket"]] += row["cost"]
    figure = go.Figure()
    for name in [*top, "other"] if "other" in series else top:
        points = series[name]
        figure.add_trace(
            go.Bar(
                name=name,
                x=buckets,
                y=[float(points.get(bucket, 0)) for bucket in buckets],
                hovertemplate="%{x}<br>" + name.replace("%", "%%") + ": $%{y:,.4f}<extra></extra>",
            )
        )
    figure.update_layout(barmode="stack", yaxis={"title": "cost (USD)", "tickprefix": "$"}, **_LAYOUT)
    return _html(figure, element_id)


def latency(rows: list[dict[str, Any]], *, element_id: str = "latency-chart") -> str:
    """p50/p95/p99 latency per bucket."""
    buckets = [row["bucket"] for row in rows]
    figure = go.Figure()
    for label in ("p50", "p95", "p99"):
        figure.add_trace(
            go.Scatter(name=label, x=buckets, y=[row[f"latency_{label}_ms"] for row in rows], mode="lines+markers")
        )
    figure.update_layout(yaxis={"title": "ms"}, **_LAYOUT)
    return _html(figure, element_id)


def requests_and_errors(rows: list[dict[str, Any]], *, element_id: str = "traffic-chart") -> str:
    buckets = [row["bucket"] for row in rows]
    figure = go.Figure()
    figure.add_trace(go.Bar(name="requests", x=buckets, y=[row["requests"] for row in rows]))
    figure.add_trace(go.Bar(name="errors", x=buckets, y=[row["errors"] for row in rows]))
    figure.add_trace(go.Bar(name="cache hits", x=buckets, y=[row["cache_hits"] for row in rows]))
    figure.update_layout(barmode="group", **_LAYOUT)
    return _html(figure, element_id)

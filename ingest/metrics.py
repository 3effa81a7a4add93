"""``/metrics`` in Prometheus text format, computed from the database on each scrape so
every web process reports the same, fleet-wide figures (no per-process counters)."""

from __future__ import annotations

import hmac
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.db.models import Count, Max, Min, Sum
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from billing.selectors import count_unpriced_events
from governance.api.authentication import ApiTokenAuthentication
from governance.models import GatewayNode
from governance.permissions import access_for, can_view_metrics
from ingest.models import BatchState, IngestBatch, IngestTotals

COUNTERS = ("accepted", "rejected", "inserted", "duplicates")


class IngestCollector(Collector):
    def collect(self) -> Iterator[Any]:
        names = dict(GatewayNode.objects.values_list("pk", "name"))
        totals: dict[tuple[int, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for row in IngestTotals.objects.values("node_id", "format", "batches", "processing_ms", *COUNTERS):
            for name in (*COUNTERS, "batches", "processing_ms"):
                totals[(row["node_id"], row["format"])][name] += row[name]
        live = IngestBatch.objects.values("node_id", "format").annotate(
            batches=Count("id"),
            processing_ms=Sum("processing_ms"),
            **{name: Sum(name) for name in COUNTERS},
        )
        for row in live:
            for name in (*COUNTERS, "batches", "processing_ms"):
                totals[(row["node_id"], row["format"])][name] += row[name] or 0
        families = {
            name: CounterMetricFamily(
                f"bursar_ingest_events_{name}", f"Events {name} by ingest", labels=["format", "node"]
            )
            for name in COUNTERS
        }
        processing = CounterMetricFamily(
            "bursar_ingest_batch_processing_seconds", "Time spent processing batches", labels=["format", "node"]
        )
        batches = CounterMetricFamily("bursar_ingest_batches", "Batches accepted", labels=["format", "node"])
        for (node_id, format_name), values in sorted(totals.items()):
            labels = [format_name, names.get(node_id, str(node_id))]
            for name in COUNTERS:
                families[name].add_metric(labels, values[name])
            processing.add_metric(labels, values["processing_ms"] / 1000)
            batches.add_metric(labels, values["batches"])
        yield from families.values()
        yield processing
        yield batches

        pending = IngestBatch.objects.filter(state=BatchState.PENDING).aggregate(
            count=Count("id"), oldest=Min("received_at")
        )
        yield GaugeMetricFamily(
            "bursar_ingest_batches_pending", "Batches accepted, not yet processed", value=pending["count"]
        )
        age = (timezone.now() - pending["oldest"]).total_seconds() if pending["oldest"] else 0
        yield GaugeMetricFamily(
            "bursar_ingest_oldest_pending_batch_age_seconds", "Age of the oldest unprocessed batch", value=age
        )
        failed = IngestBatch.objects.filter(state=BatchState.FAILED).count()
        yield GaugeMetricFamily("bursar_ingest_batches_failed", "Batches that failed after their retries", value=failed)
        yield GaugeMetricFamily(
            "bursar_usage_events_unpriced", "Stored events with no cost and no price yet", value=count_unpriced_events()
        )
        seen = GaugeMetricFamily(
            "bursar_gateway_node_last_seen_timestamp_seconds", "When each node last sent events", labels=["node"]
        )
        for name, last_seen in GatewayNode.objects.values_list("name", "last_seen_at"):
            seen.add_metric([name], last_seen.timestamp() if last_seen else 0)
        yield seen
        latest = IngestBatch.objects.aggregate(latest=Max("processed_at"))["latest"]
        yield GaugeMetricFamily(
            "bursar_ingest_last_processed_timestamp_seconds",
            "When a batch was last processed",
            value=latest.timestamp() if latest else 0,
        )


def _authorised(request: HttpRequest) -> bool:
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if settings.METRICS_TOKEN and hmac.compare_digest(header.encode(), f"Bearer {settings.METRICS_TOKEN}".encode()):
        return True
    if header.startswith("Bearer bsr_"):
        from rest_framework.request import Request

        try:
            result = ApiTokenAuthentication().authenticate(Request(request))
        except Exception:
            return False
        return result is not None and can_view_metrics(access_for(result[0], result[1]))
    return request.user.is_authenticated and can_view_metrics(access_for(request.user))


def metrics_view(request: HttpRequest) -> HttpResponse:
    """Prometheus scrape endpoint: ``Bearer $METRICS_TOKEN``, an admin API token, or an
    admin's session."""
    if not _authorised(request):
        response = HttpResponse("metrics need Bearer $METRICS_TOKEN or an admin token\n", status=401)
        response["WWW-Authenticate"] = "Bearer"
        return response
    registry = CollectorRegistry(auto_describe=False)
    registry.register(IngestCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)

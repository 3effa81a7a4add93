from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q


class BatchFormat(models.TextChoices):
    NATIVE = "native"
    LITELLM = "litellm"
    OTLP = "otlp"


class BatchState(models.TextChoices):
    PENDING = "pending"
    PROCESSED = "processed"
    FAILED = "failed"


class IngestBatch(models.Model):
    """The outbox: accepted events, committed before the 202, processed once by a worker.

    ``events`` holds the validated native events as JSON bytes (orjson), already stripped
    of anything that is not usage: no prompt or response text ever reaches this row.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    node_id = models.BigIntegerField()
    format = models.CharField(max_length=10, choices=BatchFormat.choices)
    received_at = models.DateTimeField()
    state = models.CharField(max_length=10, choices=BatchState.choices, default=BatchState.PENDING)
    accepted = models.IntegerField()
    rejected = models.IntegerField(default=0)
    inserted = models.IntegerField(null=True)
    duplicates = models.IntegerField(null=True)
    unpriced = models.IntegerField(null=True)
    events = models.BinaryField()
    attempts = models.IntegerField(default=0)
    processing_ms = models.IntegerField(null=True)
    processed_at = models.DateTimeField(null=True)
    last_error = models.TextField(blank=True, default="")

    class Meta:
        indexes = [
            models.Index(fields=["received_at"], condition=Q(state="pending"), name="ingest_batch_pending"),
            models.Index(fields=["node_id", "received_at"], name="ingest_batch_node"),
        ]

    def __str__(self) -> str:
        return f"batch {self.id} ({self.state}, {self.accepted} events)"


class IngestTotals(models.Model):
    """Lifetime counts of batches already purged, so /metrics counters never go down
    when old batches (and their event payloads) are deleted."""

    node_id = models.BigIntegerField()
    format = models.CharField(max_length=10, choices=BatchFormat.choices)
    batches = models.BigIntegerField(default=0)
    accepted = models.BigIntegerField(default=0)
    rejected = models.BigIntegerField(default=0)
    inserted = models.BigIntegerField(default=0)
    duplicates = models.BigIntegerField(default=0)
    processing_ms = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["node_id", "format"], name="ingest_totals_uniq")]

    def __str__(self) -> str:
        return f"node {self.node_id} {self.format}: {self.accepted} accepted"

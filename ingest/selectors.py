"""Reads for ingest batches."""

from __future__ import annotations

from uuid import UUID

from ingest.models import BatchState, IngestBatch


def count_pending_batches() -> int:
    return IngestBatch.objects.filter(state=BatchState.PENDING).count()


def get_batch_for_node(*, batch_id: str, node_id: int) -> IngestBatch | None:
    try:
        key = UUID(batch_id)
    except ValueError:
        return None
    return IngestBatch.objects.filter(pk=key, node_id=node_id).defer("events").first()

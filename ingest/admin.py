from __future__ import annotations

from django.contrib import admin

from governance.admin import ReadOnlyAdmin
from ingest.models import IngestBatch, IngestTotals


@admin.register(IngestBatch)
class IngestBatchAdmin(ReadOnlyAdmin):
    list_display = ["id", "format", "node_id", "received_at", "state", "accepted", "inserted", "duplicates"]
    list_filter = ["state", "format"]
    exclude = ["events"]
    show_full_result_count = False


@admin.register(IngestTotals)
class IngestTotalsAdmin(ReadOnlyAdmin):
    list_display = ["node_id", "format", "batches", "accepted", "inserted", "duplicates"]

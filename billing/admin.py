"""Read-only admin for billing rows (prices change through the API, which audits them)."""

from __future__ import annotations

from django.contrib import admin

from billing.models import ModelPrice, RepriceJob, UsageEvent, UsageRollup, UsageUnits
from billing.tiers import TIERS
from governance.admin import ReadOnlyAdmin


@admin.register(ModelPrice)
class ModelPriceAdmin(ReadOnlyAdmin):
    list_display = ["provider", "model", "effective_from", "input_per_million", "output_per_million"]
    list_filter = ["provider"]
    search_fields = ["model"]


@admin.register(UsageEvent)
class UsageEventAdmin(ReadOnlyAdmin):
    list_display = ["request_id", "occurred_at", "provider", "model", "customer_id", "cost", "cost_source", "status"]
    list_filter = ["cost_source", "provider"]
    search_fields = ["request_id"]
    show_full_result_count = False  # counting millions of rows on every page is the slow part


@admin.register(UsageRollup)
class UsageRollupAdmin(ReadOnlyAdmin):
    list_display = ["bucket", "customer_id", "provider", "model", "pipeline_stage", "requests", "cost"]
    show_full_result_count = False


@admin.register(RepriceJob)
class RepriceJobAdmin(ReadOnlyAdmin):
    list_display = ["id", "start", "end", "state", "requested_by", "events_total", "events_done", "events_changed"]


class RollupTierAdmin(ReadOnlyAdmin):
    list_display = ["bucket", "requests", "cost"]
    show_full_result_count = False


for _tier in TIERS:
    admin.site.register(_tier.model, RollupTierAdmin)


@admin.register(UsageUnits)
class UsageUnitsAdmin(ReadOnlyAdmin):
    list_display = ["bucket", "customer_id", "team_id", "virtual_key_id", "unit", "amount", "requests"]
    list_filter = ["unit"]

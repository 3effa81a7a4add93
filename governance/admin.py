"""Django admin: a read-only window on every governance model.

Every write goes through a service (which validates it and writes the audit entry), so
the admin does not write models itself. Role grants are the exception admins need
before the user pages exist; they too go through an audited service.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from governance.models import (
    Alert,
    AlertChannel,
    AlertDelivery,
    AlertDeliveryAttempt,
    ApiToken,
    AuditEntry,
    Budget,
    BudgetPeriod,
    ConfigPushAttempt,
    ConfigRenderMark,
    ConfigRevision,
    Customer,
    GatewayNode,
    Invitation,
    RoleGrant,
    Team,
    VirtualKey,
)


class ReadOnlyAdmin(admin.ModelAdmin[Any]):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Customer)
class CustomerAdmin(ReadOnlyAdmin):
    list_display = ["name", "external_id", "currency", "markup_percent", "created_at"]
    search_fields = ["name", "external_id"]


@admin.register(Team)
class TeamAdmin(ReadOnlyAdmin):
    list_display = ["slug", "name", "customer"]
    search_fields = ["slug", "name"]
    list_select_related = ["customer"]


@admin.register(VirtualKey)
class VirtualKeyAdmin(ReadOnlyAdmin):
    list_display = ["name", "public_id", "secret_prefix", "status", "team", "customer", "expires_at"]
    list_filter = ["status"]
    search_fields = ["name", "public_id", "secret_prefix"]
    exclude = [
        "secret_sha256",
        "previous_secret_sha256",
        "secret_encrypted",
        "previous_secret_encrypted",
        "litellm_sha256",
        "previous_litellm_sha256",
    ]
    list_select_related = ["team", "customer"]


@admin.register(Budget)
class BudgetAdmin(ReadOnlyAdmin):
    list_display = ["id", "scope_type", "customer", "team", "virtual_key", "amount", "currency", "period", "hard_cap"]
    list_filter = ["scope_type", "period"]


@admin.register(BudgetPeriod)
class BudgetPeriodAdmin(ReadOnlyAdmin):
    list_display = ["budget", "start", "end", "spent"]


@admin.register(Alert)
class AlertAdmin(ReadOnlyAdmin):
    list_display = ["fired_at", "budget", "kind", "threshold", "spent", "limit", "rearmed_at"]
    list_filter = ["kind"]
    search_fields = ["message"]


@admin.register(AlertChannel)
class AlertChannelAdmin(ReadOnlyAdmin):
    list_display = ["id", "name", "kind", "target", "scope_type", "enabled"]
    list_filter = ["kind", "enabled"]
    exclude = ["secret_encrypted"]


@admin.register(AlertDelivery)
class AlertDeliveryAdmin(ReadOnlyAdmin):
    list_display = ["alert", "channel", "state", "attempts", "next_attempt_at", "delivered_at"]
    list_filter = ["state"]


@admin.register(AlertDeliveryAttempt)
class AlertDeliveryAttemptAdmin(ReadOnlyAdmin):
    list_display = ["delivery", "number", "at", "succeeded", "status_code", "duration_ms"]


@admin.register(GatewayNode)
class GatewayNodeAdmin(ReadOnlyAdmin):
    list_display = ["name", "kind", "base_url", "ingest_token_prefix", "last_seen_at", "applied_version"]
    list_filter = ["kind"]
    exclude = ["ingest_token_sha256", "admin_token_encrypted", "ingest_token_encrypted"]


@admin.register(ConfigRevision)
class ConfigRevisionAdmin(ReadOnlyAdmin):
    list_display = ["version", "created_at", "reason", "urgent", "sha256"]
    exclude = ["document"]  # holds key secret hashes: read it through config/latest/ (admins)


@admin.register(ConfigRenderMark)
class ConfigRenderMarkAdmin(ReadOnlyAdmin):
    list_display = ["requested", "rendered", "rendered_at"]


@admin.register(ConfigPushAttempt)
class ConfigPushAttemptAdmin(ReadOnlyAdmin):
    list_display = ["at", "node", "version", "action", "succeeded", "status_code", "error", "duration_ms"]
    list_filter = ["action", "succeeded"]


@admin.register(ApiToken)
class ApiTokenAdmin(ReadOnlyAdmin):
    list_display = ["name", "prefix", "role", "user", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["role"]
    exclude = ["token_sha256"]


@admin.register(Invitation)
class InvitationAdmin(ReadOnlyAdmin):
    """Invitations are made and revoked on the dashboard's Users page (or ``invitations/``)."""

    list_display = ["email", "role", "invited_by", "created_at", "expires_at", "accepted_at", "revoked_at"]
    list_filter = ["role"]
    exclude = ["token_sha256"]


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    list_display = ["at", "actor", "via", "action", "object_type", "object_repr"]
    list_filter = ["via", "object_type"]
    search_fields = ["actor", "action", "object_repr"]


@admin.register(RoleGrant)
class RoleGrantAdmin(ReadOnlyAdmin):
    """Grants are read here; they are given, re-scoped and revoked on the dashboard's Users
    page (or the ``users/`` API), through the audited service."""

    list_display = ["user", "role", "created_at"]
    list_filter = ["role"]

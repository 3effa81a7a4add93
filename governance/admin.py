"""Django admin for every governance model. Secrets and their hashes are never shown;
the audit log is read-only."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from governance.models import ApiToken, AuditEntry, Budget, Customer, GatewayNode, RoleGrant, Team, VirtualKey


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin[Customer]):
    list_display = ["name", "external_id", "currency", "markup_percent", "created_at"]
    search_fields = ["name", "external_id"]


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin[Team]):
    list_display = ["slug", "name", "customer"]
    search_fields = ["slug", "name"]
    list_select_related = ["customer"]


class ReadOnlySecretsAdmin(admin.ModelAdmin[Any]):
    """Objects created with a secret are issued through the API or a command (which show
    the secret once), so the admin only reads them."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(VirtualKey)
class VirtualKeyAdmin(ReadOnlySecretsAdmin):
    list_display = ["name", "public_id", "secret_prefix", "status", "team", "customer", "expires_at"]
    list_filter = ["status"]
    search_fields = ["name", "public_id", "secret_prefix"]
    exclude = ["secret_sha256", "previous_secret_sha256"]
    list_select_related = ["team", "customer"]


@admin.register(Budget)
class BudgetAdmin(admin.ModelAdmin[Budget]):
    list_display = ["id", "scope_type", "customer", "team", "virtual_key", "amount", "currency", "period", "hard_cap"]
    list_filter = ["scope_type", "period"]


@admin.register(ApiToken)
class ApiTokenAdmin(ReadOnlySecretsAdmin):
    list_display = ["name", "prefix", "role", "user", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["role"]
    exclude = ["token_sha256"]


@admin.register(GatewayNode)
class GatewayNodeAdmin(ReadOnlySecretsAdmin):
    list_display = ["name", "kind", "base_url", "ingest_token_prefix", "last_seen_at", "applied_version"]
    list_filter = ["kind"]
    exclude = ["ingest_token_sha256", "admin_token_encrypted"]


@admin.register(RoleGrant)
class RoleGrantAdmin(admin.ModelAdmin[RoleGrant]):
    list_display = ["user", "role", "created_at"]
    list_filter = ["role"]


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin[AuditEntry]):
    list_display = ["at", "actor", "via", "action", "object_type", "object_repr"]
    list_filter = ["via", "object_type"]
    search_fields = ["actor", "action", "object_repr"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

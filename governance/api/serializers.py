"""Request and response shapes (``api.md``). Writes use plain serializers that only
validate; the view hands ``validated_data`` to a service."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.utils import timezone
from rest_framework import serializers

from governance.models import (
    ApiToken,
    AuditEntry,
    Budget,
    BudgetPeriodKind,
    BudgetScope,
    Customer,
    GatewayNode,
    GatewayNodeKind,
    Role,
    Team,
    VirtualKey,
)
from governance.models.organization import currency_validator

NODE_SILENT_AFTER = timedelta(minutes=5)


class CustomerSerializer(serializers.ModelSerializer[Customer]):
    class Meta:
        model = Customer
        fields = ["id", "external_id", "name", "currency", "markup_percent", "created_at", "updated_at"]


class CustomerWriteSerializer(serializers.Serializer[Customer]):
    external_id = serializers.CharField(max_length=200)
    name = serializers.CharField(max_length=200)
    currency = serializers.CharField(max_length=3, validators=[currency_validator], default="USD")
    markup_percent = serializers.DecimalField(
        max_digits=9, decimal_places=4, min_value=Decimal("0"), max_value=Decimal("10000"), default=Decimal("0")
    )


class TeamSerializer(serializers.ModelSerializer[Team]):
    class Meta:
        model = Team
        fields = ["id", "slug", "name", "customer", "created_at", "updated_at"]


class TeamWriteSerializer(serializers.Serializer[Team]):
    slug = serializers.SlugField(max_length=100)
    name = serializers.CharField(max_length=200)
    customer = serializers.PrimaryKeyRelatedField(queryset=Customer.objects.all(), allow_null=True, default=None)


class RateLimitSerializer(serializers.Serializer[Any]):
    requests_per_minute = serializers.IntegerField(min_value=1, max_value=10_000_000, allow_null=True, default=None)
    tokens_per_minute = serializers.IntegerField(min_value=1, max_value=10_000_000_000, allow_null=True, default=None)


class VirtualKeySerializer(serializers.ModelSerializer[VirtualKey]):
    rate_limit = serializers.SerializerMethodField()
    status = serializers.SerializerMethodField()
    blocked_by = serializers.ManyRelatedField(
        child_relation=serializers.PrimaryKeyRelatedField(read_only=True), read_only=True, help_text="budget ids"
    )
    previous_secret_valid_until = serializers.SerializerMethodField()

    class Meta:
        model = VirtualKey
        fields = [
            "id",
            "public_id",
            "name",
            "team",
            "customer",
            "secret_prefix",
            "allowed_models",
            "rate_limit",
            "status",
            "blocked_by",
            "expires_at",
            "revoked_at",
            "rotated_at",
            "previous_secret_valid_until",
            "created_at",
            "updated_at",
        ]

    def get_rate_limit(self, key: VirtualKey) -> dict[str, int | None]:
        return {"requests_per_minute": key.requests_per_minute, "tokens_per_minute": key.tokens_per_minute}

    def get_status(self, key: VirtualKey) -> str:
        return key.effective_status(timezone.now())

    def get_previous_secret_valid_until(self, key: VirtualKey) -> str | None:
        until = key.previous_secret_expires_at
        return until.isoformat() if until and key.previous_secret_sha256 and until > timezone.now() else None


class IssuedVirtualKeySerializer(VirtualKeySerializer):
    secret = serializers.CharField(read_only=True, help_text="Shown once; store it now.")

    class Meta(VirtualKeySerializer.Meta):
        fields = [*VirtualKeySerializer.Meta.fields, "secret"]


class VirtualKeyWriteSerializer(serializers.Serializer[VirtualKey]):
    name = serializers.CharField(max_length=200)
    team = serializers.PrimaryKeyRelatedField(queryset=Team.objects.all(), allow_null=True, default=None)
    customer = serializers.PrimaryKeyRelatedField(queryset=Customer.objects.all(), allow_null=True, default=None)
    allowed_models = serializers.ListField(child=serializers.CharField(max_length=200), max_length=500, default=list)
    rate_limit = RateLimitSerializer(required=False)
    expires_at = serializers.DateTimeField(allow_null=True, default=None)

    def to_service_kwargs(self) -> dict[str, Any]:
        """Flatten ``rate_limit`` into the key's own fields, keeping only what was sent."""
        data = dict(self.validated_data)
        rate_limit = data.pop("rate_limit", None)
        if rate_limit is not None:
            sent = self.initial_data.get("rate_limit") or {}
            for name in ("requests_per_minute", "tokens_per_minute"):
                if not self.partial or name in sent:
                    data[name] = rate_limit.get(name)
        return data


class RotateSerializer(serializers.Serializer[Any]):
    grace_seconds = serializers.IntegerField(min_value=0, max_value=30 * 24 * 3600, default=3600)


class BudgetSerializer(serializers.ModelSerializer[Budget]):
    scope_id = serializers.IntegerField(read_only=True, allow_null=True)

    class Meta:
        model = Budget
        fields = [
            "id",
            "scope_type",
            "scope_id",
            "amount",
            "currency",
            "period",
            "timezone",
            "soft_thresholds",
            "hard_cap",
            "created_at",
            "updated_at",
        ]


class BudgetWriteSerializer(serializers.Serializer[Budget]):
    scope_type = serializers.ChoiceField(choices=BudgetScope.choices)
    scope_id = serializers.IntegerField(allow_null=True, default=None, min_value=1)
    amount = serializers.DecimalField(max_digits=20, decimal_places=4, min_value=Decimal("0.0001"))
    currency = serializers.CharField(max_length=3, validators=[currency_validator], default="USD")
    period = serializers.ChoiceField(choices=BudgetPeriodKind.choices, default=BudgetPeriodKind.MONTHLY)
    timezone = serializers.CharField(max_length=64, default="UTC")
    soft_thresholds = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=100), max_length=20, default=[50, 80]
    )
    hard_cap = serializers.BooleanField(default=True)


class ApiTokenSerializer(serializers.ModelSerializer[ApiToken]):
    class Meta:
        model = ApiToken
        fields = ["id", "name", "prefix", "role", "user", "created_at", "last_used_at", "expires_at", "revoked_at"]


class IssuedApiTokenSerializer(ApiTokenSerializer):
    token = serializers.CharField(read_only=True, help_text="Shown once; store it now.")

    class Meta(ApiTokenSerializer.Meta):
        fields = [*ApiTokenSerializer.Meta.fields, "token"]


class ApiTokenWriteSerializer(serializers.Serializer[ApiToken]):
    name = serializers.CharField(max_length=200)
    role = serializers.ChoiceField(choices=Role.choices)
    expires_at = serializers.DateTimeField(allow_null=True, default=None)


class AuditEntrySerializer(serializers.ModelSerializer[AuditEntry]):
    object = serializers.SerializerMethodField()

    class Meta:
        model = AuditEntry
        fields = ["id", "at", "actor", "via", "ip", "action", "object", "before", "after", "entry_hash", "prev_hash"]

    def get_object(self, entry: AuditEntry) -> dict[str, str]:
        return {"type": entry.object_type, "id": entry.object_id, "repr": entry.object_repr}


class GatewayNodeSerializer(serializers.ModelSerializer[GatewayNode]):
    status = serializers.SerializerMethodField(help_text="never_seen, online (sent within 5 minutes) or silent")
    admin_token_set = serializers.SerializerMethodField()

    class Meta:
        model = GatewayNode
        fields = [
            "id",
            "name",
            "kind",
            "base_url",
            "ingest_token_prefix",
            "admin_token_set",
            "status",
            "applied_version",
            "last_push_at",
            "last_seen_at",
            "last_error",
            "created_at",
        ]

    def get_status(self, node: GatewayNode) -> str:
        if node.last_seen_at is None:
            return "never_seen"
        return "online" if timezone.now() - node.last_seen_at < NODE_SILENT_AFTER else "silent"

    def get_admin_token_set(self, node: GatewayNode) -> bool:
        return bool(node.admin_token_encrypted)


class GatewayNodeWriteSerializer(serializers.Serializer[GatewayNode]):
    name = serializers.RegexField(r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=100)
    kind = serializers.ChoiceField(choices=GatewayNodeKind.choices, default=GatewayNodeKind.GENERIC)
    base_url = serializers.URLField(max_length=500, allow_blank=True, default="")
    admin_token = serializers.CharField(max_length=2000, allow_blank=True, default="", write_only=True)

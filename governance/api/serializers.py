"""Request and response shapes (``api.md``). Writes use plain serializers that only
validate; the view hands ``validated_data`` to a service."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.utils import timezone
from rest_framework import serializers

from governance.budget_state import PeriodStatus
from governance.models import (
    Alert,
    AlertChannel,
    AlertChannelKind,
    AlertDelivery,
    AlertDeliveryAttempt,
    ApiToken,
    AuditEntry,
    Budget,
    BudgetPeriod,
    BudgetPeriodKind,
    BudgetScope,
    ConfigPushAttempt,
    ConfigRevision,
    Customer,
    GatewayNode,
    GatewayNodeKind,
    Invitation,
    Role,
    RoleGrant,
    Team,
    VirtualKey,
)
from governance.models.organization import currency_validator
from governance.selectors import budget_statuses

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


class BudgetOverrideSerializer(serializers.Serializer[Any]):
    extra_amount = serializers.DecimalField(max_digits=20, decimal_places=4, min_value=Decimal("0.0001"))
    expires_at = serializers.DateTimeField()
    reason = serializers.CharField(max_length=500)


class BudgetSerializer(serializers.ModelSerializer[Budget]):
    """A budget with its current period (``context["statuses"]`` when listing)."""

    scope_id = serializers.IntegerField(read_only=True, allow_null=True)
    period_start = serializers.SerializerMethodField()
    period_end = serializers.SerializerMethodField()
    limit = serializers.SerializerMethodField(help_text="amount plus an active override")
    spent = serializers.SerializerMethodField()
    remaining = serializers.SerializerMethodField()
    percent_used = serializers.SerializerMethodField()
    forecast_period_spend = serializers.SerializerMethodField(help_text="linear projection of the burn rate so far")
    projected_exhaustion_at = serializers.SerializerMethodField(
        help_text="when spend reaches the limit at that rate, if before the period ends"
    )
    state = serializers.SerializerMethodField(help_text="ok, warning or exceeded")
    override = serializers.SerializerMethodField()

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
            "period_start",
            "period_end",
            "limit",
            "spent",
            "remaining",
            "percent_used",
            "forecast_period_spend",
            "projected_exhaustion_at",
            "state",
            "override",
            "created_at",
            "updated_at",
        ]

    def _status(self, budget: Budget) -> PeriodStatus:
        statuses = self.context.get("statuses")
        if statuses is None or budget.pk not in statuses:
            statuses = budget_statuses([budget], now=self.context.get("now") or timezone.now())
        status: PeriodStatus = statuses[budget.pk]
        return status

    def get_period_start(self, budget: Budget) -> datetime:
        return self._status(budget).period_start

    def get_period_end(self, budget: Budget) -> datetime:
        return self._status(budget).period_end

    def get_limit(self, budget: Budget) -> str:
        return _money(self._status(budget).limit)

    def get_spent(self, budget: Budget) -> str:
        return _money(self._status(budget).spent)

    def get_remaining(self, budget: Budget) -> str:
        return _money(self._status(budget).remaining)

    def get_percent_used(self, budget: Budget) -> str:
        return str(self._status(budget).percent_used)

    def get_forecast_period_spend(self, budget: Budget) -> str:
        return _money(self._status(budget).forecast_period_spend)

    def get_projected_exhaustion_at(self, budget: Budget) -> datetime | None:
        return self._status(budget).projected_exhaustion_at

    def get_state(self, budget: Budget) -> str:
        return self._status(budget).state

    def get_override(self, budget: Budget) -> dict[str, Any] | None:
        now = self.context.get("now") or timezone.now()
        if budget.limit_at(now) == budget.amount:
            return None
        return {
            "extra_amount": str(budget.override_amount),
            "expires_at": budget.override_expires_at,
            "reason": budget.override_reason,
        }


def _money(value: Decimal) -> str:
    return str(value.quantize(Decimal("0.0001")))


class BudgetPeriodSerializer(serializers.ModelSerializer[BudgetPeriod]):
    spent = serializers.SerializerMethodField()

    class Meta:
        model = BudgetPeriod
        fields = ["id", "start", "end", "spent"]

    def get_spent(self, period: BudgetPeriod) -> str:
        return _money(period.spent)


class AlertDeliveryAttemptSerializer(serializers.ModelSerializer[AlertDeliveryAttempt]):
    class Meta:
        model = AlertDeliveryAttempt
        fields = ["number", "at", "succeeded", "status_code", "error", "duration_ms"]


class AlertDeliverySerializer(serializers.ModelSerializer[AlertDelivery]):
    channel_kind = serializers.CharField(source="channel.kind", read_only=True)
    attempt_log = AlertDeliveryAttemptSerializer(many=True, read_only=True)

    class Meta:
        model = AlertDelivery
        fields = [
            "id",
            "channel",
            "channel_kind",
            "state",
            "attempts",
            "next_attempt_at",
            "delivered_at",
            "last_error",
            "attempt_log",
        ]


class AlertSerializer(serializers.ModelSerializer[Alert]):
    period_start = serializers.DateTimeField(source="period.start", read_only=True)
    period_end = serializers.DateTimeField(source="period.end", read_only=True)
    spent = serializers.SerializerMethodField()
    deliveries = AlertDeliverySerializer(many=True, read_only=True)

    class Meta:
        model = Alert
        fields = [
            "id",
            "budget",
            "kind",
            "threshold",
            "period_start",
            "period_end",
            "fired_at",
            "spent",
            "limit",
            "projected_at",
            "message",
            "rearmed_at",
            "deliveries",
        ]

    def get_spent(self, alert: Alert) -> str:
        return _money(alert.spent)


class AlertChannelSerializer(serializers.ModelSerializer[AlertChannel]):
    scope_id = serializers.IntegerField(read_only=True, allow_null=True)

    class Meta:
        model = AlertChannel
        fields = ["id", "name", "kind", "target", "scope_type", "scope_id", "enabled", "created_at", "updated_at"]


class CreatedAlertChannelSerializer(AlertChannelSerializer):
    secret = serializers.CharField(
        read_only=True, help_text="A generated webhook signing secret, shown once (empty when you gave one)."
    )

    class Meta(AlertChannelSerializer.Meta):
        fields = [*AlertChannelSerializer.Meta.fields, "secret"]


class AlertChannelWriteSerializer(serializers.Serializer[AlertChannel]):
    kind = serializers.ChoiceField(choices=AlertChannelKind.choices)
    target = serializers.CharField(
        max_length=1000, help_text="webhook or Slack incoming-webhook URL; email: addresses separated by commas"
    )
    secret = serializers.CharField(
        max_length=200, required=False, default="", write_only=True, help_text="webhook signing secret"
    )
    name = serializers.CharField(max_length=200, required=False, default="", allow_blank=True)
    scope_type = serializers.ChoiceField(choices=BudgetScope.choices, default=BudgetScope.ORGANIZATION)
    scope_id = serializers.IntegerField(allow_null=True, default=None, min_value=1)
    enabled = serializers.BooleanField(default=True)


class AlertChannelUpdateSerializer(serializers.Serializer[AlertChannel]):
    name = serializers.CharField(max_length=200, required=False)
    enabled = serializers.BooleanField(required=False)


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


def scope_ids(help_text: str) -> serializers.ManyRelatedField:
    """A read-only list of ids: the customers or teams a grant, token or invitation covers."""
    return serializers.ManyRelatedField(
        child_relation=serializers.PrimaryKeyRelatedField(read_only=True), read_only=True, help_text=help_text
    )


class ApiTokenSerializer(serializers.ModelSerializer[ApiToken]):
    customers = scope_ids("customer ids the role is limited to (none, with scoped false: the whole organisation)")
    teams = scope_ids("team ids the role is limited to")

    class Meta:
        model = ApiToken
        fields = [
            "id",
            "name",
            "prefix",
            "role",
            "scoped",
            "customers",
            "teams",
            "user",
            "created_at",
            "last_used_at",
            "expires_at",
            "revoked_at",
        ]


class IssuedApiTokenSerializer(ApiTokenSerializer):
    token = serializers.CharField(read_only=True, help_text="Shown once; store it now.")

    class Meta(ApiTokenSerializer.Meta):
        fields = [*ApiTokenSerializer.Meta.fields, "token"]


class ScopeFields(serializers.Serializer[Any]):
    """A role and its scope: customer and team ids (empty: the whole organisation)."""

    role = serializers.ChoiceField(choices=Role.choices)
    customers = serializers.ManyRelatedField(
        child_relation=serializers.PrimaryKeyRelatedField(queryset=Customer.objects.all()), required=False
    )
    teams = serializers.ManyRelatedField(
        child_relation=serializers.PrimaryKeyRelatedField(queryset=Team.objects.all()), required=False
    )


class ApiTokenWriteSerializer(ScopeFields):
    name = serializers.CharField(max_length=200)
    expires_at = serializers.DateTimeField(allow_null=True, default=None)


class GrantSerializer(serializers.ModelSerializer[RoleGrant]):
    customers = scope_ids("customer ids the role is limited to (none, with scoped false: the whole organisation)")
    teams = scope_ids("team ids the role is limited to")

    class Meta:
        model = RoleGrant
        fields = ["role", "scoped", "customers", "teams", "created_at"]


class UserSerializer(serializers.ModelSerializer[Any]):
    grants = GrantSerializer(many=True, read_only=True, source="role_grants")
    mfa_enabled = serializers.SerializerMethodField()
    sso = serializers.SerializerMethodField(help_text="providers this user signs in with")

    class Meta:
        model = get_user_model()
        fields = [
            "id",
            "username",
            "email",
            "is_active",
            "is_superuser",
            "last_login",
            "date_joined",
            "grants",
            "mfa_enabled",
            "sso",
        ]
        read_only_fields = fields

    def get_mfa_enabled(self, user: Any) -> bool:
        return hasattr(user, "authenticator_set") and any(True for _ in user.authenticator_set.all())

    def get_sso(self, user: Any) -> list[str]:
        return sorted({account.provider for account in user.socialaccount_set.all()})


class UserUpdateSerializer(serializers.Serializer[Any]):
    is_active = serializers.BooleanField()


class InvitationSerializer(serializers.ModelSerializer[Invitation]):
    customers = scope_ids("customer ids the role is limited to (none, with scoped false: the whole organisation)")
    teams = scope_ids("team ids the role is limited to")
    state = serializers.SerializerMethodField()

    class Meta:
        model = Invitation
        fields = [
            "id",
            "email",
            "role",
            "scoped",
            "customers",
            "teams",
            "invited_by",
            "created_at",
            "expires_at",
            "state",
        ]

    def get_state(self, invitation: Invitation) -> str:
        return invitation.state(timezone.now())


class InvitationWriteSerializer(ScopeFields):
    email = serializers.EmailField(max_length=254)


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
    mode = serializers.SerializerMethodField(help_text="push (Bursar sends config to base_url) or pull")

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
            "mode",
            "applied_version",
            "last_push_at",
            "last_seen_at",
            "last_error",
            "push_failures",
            "next_push_at",
            "last_checked_at",
            "drift",
            "created_at",
        ]

    def get_status(self, node: GatewayNode) -> str:
        if node.last_seen_at is None:
            return "never_seen"
        return "online" if timezone.now() - node.last_seen_at < NODE_SILENT_AFTER else "silent"

    def get_admin_token_set(self, node: GatewayNode) -> bool:
        return bool(node.admin_token_encrypted)

    def get_mode(self, node: GatewayNode) -> str:
        return "push" if node.base_url else "pull"


class ConfigRevisionSerializer(serializers.ModelSerializer[ConfigRevision]):
    document = serializers.SerializerMethodField(help_text="what gateways receive: version, issued_at, virtual_keys")

    class Meta:
        model = ConfigRevision
        fields = ["version", "sha256", "created_at", "reason", "urgent", "document"]

    def get_document(self, revision: ConfigRevision) -> dict[str, Any]:
        from governance.services.config import revision_document

        return revision_document(revision)


class ConfigPushQueuedSerializer(serializers.Serializer[Any]):
    version = serializers.IntegerField()
    nodes = serializers.IntegerField(help_text="push-mode nodes the revision is being sent to")


class ConfigPushAttemptSerializer(serializers.ModelSerializer[ConfigPushAttempt]):
    class Meta:
        model = ConfigPushAttempt
        fields = ["id", "version", "action", "at", "succeeded", "status_code", "error", "detail", "duration_ms"]


class GatewayNodeWriteSerializer(serializers.Serializer[GatewayNode]):
    name = serializers.RegexField(r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=100)
    kind = serializers.ChoiceField(choices=GatewayNodeKind.choices, default=GatewayNodeKind.GENERIC)
    base_url = serializers.URLField(max_length=500, allow_blank=True, default="")
    admin_token = serializers.CharField(max_length=2000, allow_blank=True, default="", write_only=True)

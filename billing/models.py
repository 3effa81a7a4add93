"""Prices, usage events and their hourly rollups.

Events and rollups name customers, teams, keys and nodes by id without database
foreign-key constraints: ingest writes thousands of rows a second and the ids come from
governance lookups in the same transaction, so the constraint check would only cost.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from billing.histogram import BUCKET_FIELDS


class ModelPrice(models.Model):
    """A list price, in effect from ``effective_from`` until a later row for the same
    provider and model pattern. ``model`` may end in ``*`` (a prefix match)."""

    provider = models.CharField(max_length=100)
    model = models.CharField(max_length=200)
    effective_from = models.DateTimeField()
    currency = models.CharField(max_length=3, default="USD")
    input_per_million = models.DecimalField(max_digits=20, decimal_places=10, default=0)
    output_per_million = models.DecimalField(max_digits=20, decimal_places=10, default=0)
    # Null: billed at the input rate.
    cached_input_per_million = models.DecimalField(max_digits=20, decimal_places=10, null=True, blank=True)
    cache_write_per_million = models.DecimalField(max_digits=20, decimal_places=10, null=True, blank=True)
    per_image = models.DecimalField(max_digits=20, decimal_places=10, default=0)
    per_gpu_second = models.DecimalField(max_digits=20, decimal_places=10, default=0)
    per_request = models.DecimalField(max_digits=20, decimal_places=10, default=0)
    source = models.CharField(max_length=300, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["provider", "model", "-effective_from"]
        constraints = [
            models.UniqueConstraint(fields=["provider", "model", "effective_from"], name="model_price_version_uniq"),
        ]

    def __str__(self) -> str:
        return f"{self.provider}/{self.model} from {self.effective_from:%Y-%m-%d}"


class CostSource(models.TextChoices):
    GATEWAY = "gateway"  # the gateway reported the cost
    CATALOG = "catalog"  # priced from ModelPrice
    UNPRICED = "unpriced"  # no cost and no price yet: priced by a later re-price


class CacheKind(models.TextChoices):
    NONE = "none"
    EXACT = "exact"
    SEMANTIC = "semantic"


class UsageEvent(models.Model):
    """One gateway request. Append-only; ``request_id`` is the dedupe key.

    Never holds prompt or response text.
    """

    request_id = models.CharField(max_length=200)
    occurred_at = models.DateTimeField()
    received_at = models.DateTimeField()
    batch_id = models.UUIDField(null=True)
    node_id = models.BigIntegerField(null=True)
    customer_id = models.BigIntegerField(null=True)
    team_id = models.BigIntegerField(null=True)
    virtual_key_id = models.BigIntegerField(null=True)
    # What the gateway called the key/customer/team, kept when it matched nothing yet.
    virtual_key_ref = models.CharField(max_length=200, blank=True, default="")
    customer_ref = models.CharField(max_length=200, blank=True, default="")
    team_ref = models.CharField(max_length=200, blank=True, default="")
    end_user = models.CharField(max_length=200, blank=True, default="")
    provider = models.CharField(max_length=100)
    model = models.CharField(max_length=200)
    operation = models.CharField(max_length=20, default="chat")
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    cached_input_tokens = models.BigIntegerField(default=0)
    cache_write_tokens = models.BigIntegerField(default=0)
    images = models.IntegerField(default=0)
    gpu_seconds = models.DecimalField(max_digits=20, decimal_places=6, default=0)
    cost = models.DecimalField(max_digits=20, decimal_places=10, null=True)
    cost_source = models.CharField(max_length=10, choices=CostSource.choices)
    currency = models.CharField(max_length=3, default="USD")
    price_id = models.BigIntegerField(null=True)
    latency_ms = models.IntegerField(null=True)
    ttft_ms = models.IntegerField(null=True)
    status = models.IntegerField(default=200)
    cache = models.CharField(max_length=10, choices=CacheKind.choices, default=CacheKind.NONE)
    cache_savings = models.DecimalField(max_digits=20, decimal_places=10, default=0)
    fallback = models.BooleanField(default=False)
    pipeline_stage = models.CharField(max_length=100, blank=True, default="")
    tags = models.JSONField(default=dict, blank=True)
    units = models.JSONField(default=dict, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["request_id"], name="usage_event_request_id_uniq")]
        indexes = [
            models.Index(fields=["occurred_at"], name="usage_event_occurred"),
            models.Index(fields=["occurred_at"], condition=Q(cost_source="unpriced"), name="usage_event_unpriced"),
        ]

    def __str__(self) -> str:
        return self.request_id


class UsageSums(models.Model):
    """What every rollup tier carries: its time bucket (UTC) and the additive measures,
    latency histogram included (``latency_bucket_NN`` are ``billing.histogram``'s counts)."""

    bucket = models.DateTimeField()
    requests = models.BigIntegerField(default=0)
    errors = models.BigIntegerField(default=0)
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    cached_input_tokens = models.BigIntegerField(default=0)
    cache_write_tokens = models.BigIntegerField(default=0)
    images = models.BigIntegerField(default=0)
    cost = models.DecimalField(max_digits=20, decimal_places=10, default=0)
    unpriced_requests = models.BigIntegerField(default=0)
    cache_hits = models.BigIntegerField(default=0)
    cache_savings = models.DecimalField(max_digits=20, decimal_places=10, default=0)
    fallbacks = models.BigIntegerField(default=0)
    latency_count = models.BigIntegerField(default=0)
    latency_sum_ms = models.BigIntegerField(default=0)
    latency_bucket_00 = models.BigIntegerField(default=0)
    latency_bucket_01 = models.BigIntegerField(default=0)
    latency_bucket_02 = models.BigIntegerField(default=0)
    latency_bucket_03 = models.BigIntegerField(default=0)
    latency_bucket_04 = models.BigIntegerField(default=0)
    latency_bucket_05 = models.BigIntegerField(default=0)
    latency_bucket_06 = models.BigIntegerField(default=0)
    latency_bucket_07 = models.BigIntegerField(default=0)
    latency_bucket_08 = models.BigIntegerField(default=0)
    latency_bucket_09 = models.BigIntegerField(default=0)
    latency_bucket_10 = models.BigIntegerField(default=0)
    latency_bucket_11 = models.BigIntegerField(default=0)
    latency_bucket_12 = models.BigIntegerField(default=0)
    latency_bucket_13 = models.BigIntegerField(default=0)
    latency_bucket_14 = models.BigIntegerField(default=0)
    latency_bucket_15 = models.BigIntegerField(default=0)
    latency_bucket_16 = models.BigIntegerField(default=0)
    latency_bucket_17 = models.BigIntegerField(default=0)
    latency_bucket_18 = models.BigIntegerField(default=0)
    latency_bucket_19 = models.BigIntegerField(default=0)

    class Meta:
        abstract = True


class UsageUnits(models.Model):
    """Units of work (an event's ``units``, e.g. ``{"renders": 3}``) per hour and scope:
    the divisor of "cost per unit of work". Written with the rollups for newly stored
    events; counts only, so re-pricing never has to touch it."""

    bucket = models.DateTimeField()
    customer_id = models.BigIntegerField(default=0)
    team_id = models.BigIntegerField(default=0)
    virtual_key_id = models.BigIntegerField(default=0)
    unit = models.CharField(max_length=50)
    amount = models.DecimalField(max_digits=24, decimal_places=6, default=0)
    requests = models.BigIntegerField(default=0)  # events that reported this unit

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["bucket", "customer_id", "team_id", "virtual_key_id", "unit"], name="usage_units_key_uniq"
            )
        ]
        indexes = [
            models.Index(fields=["customer_id", "bucket"], name="usage_units_customer"),
            models.Index(fields=["bucket"], name="usage_units_bucket"),
        ]

    def __str__(self) -> str:
        return f"{self.bucket:%Y-%m-%d %H}h {self.unit}: {self.amount}"


class UsageRollup(UsageSums):
    """Hourly sums per (customer, team, key, provider, model, pipeline stage).

    Dimension ids are 0 and strings empty when an event had none, so the natural key is
    a plain unique constraint that upserts can target on PostgreSQL and SQLite alike.
    """

    customer_id = models.BigIntegerField(default=0)
    team_id = models.BigIntegerField(default=0)
    virtual_key_id = models.BigIntegerField(default=0)
    provider = models.CharField(max_length=100)
    model = models.CharField(max_length=200)
    pipeline_stage = models.CharField(max_length=100, default="")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["bucket", "customer_id", "team_id", "virtual_key_id", "provider", "model", "pipeline_stage"],
                name="usage_rollup_key_uniq",
            )
        ]
        indexes = [
            models.Index(fields=["bucket"], name="usage_rollup_bucket"),
            models.Index(fields=["customer_id", "bucket"], name="usage_rollup_customer"),
            # A team's or a key's spend page reads only its own rows.
            models.Index(fields=["team_id", "bucket"], name="usage_rollup_team"),
            models.Index(fields=["virtual_key_id", "bucket"], name="usage_rollup_key"),
        ]

    def __str__(self) -> str:
        return f"{self.bucket:%Y-%m-%d %H:00} {self.provider}/{self.model}"


class UsageDailyByCustomerModel(UsageSums):
    """Daily (UTC) sums per customer and model: org-wide questions over weeks and months
    ("spend per customer this quarter") read this instead of every hourly row."""

    customer_id = models.BigIntegerField(default=0)
    provider = models.CharField(max_length=100)
    model = models.CharField(max_length=200)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["bucket", "customer_id", "provider", "model"], name="usage_daily_cm_uniq")
        ]
        indexes = [models.Index(fields=["customer_id", "bucket"], name="usage_daily_cm_customer")]

    def __str__(self) -> str:
        return f"{self.bucket:%Y-%m-%d} customer {self.customer_id} {self.provider}/{self.model}"


class UsageDailyByTeamModel(UsageSums):
    """Daily (UTC) sums per team, customer, model and pipeline stage: what a team lead, or
    a customer's viewer opening one of its teams, reads over weeks, instead of hourly rows
    across every dimension. (A team's events almost always name one customer, so the
    customer column adds few rows.)"""

    team_id = models.BigIntegerField(default=0)
    customer_id = models.BigIntegerField(default=0)
    provider = models.CharField(max_length=100)
    model = models.CharField(max_length=200)
    pipeline_stage = models.CharField(max_length=100, blank=True, default="")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["bucket", "team_id", "customer_id", "provider", "model", "pipeline_stage"],
                name="usage_daily_tm_uniq",
            )
        ]
        indexes = [models.Index(fields=["team_id", "bucket"], name="usage_daily_tm_team")]

    def __str__(self) -> str:
        return f"{self.bucket:%Y-%m-%d} team {self.team_id} customer {self.customer_id} {self.provider}/{self.model}"


class UsageDailyByCustomer(UsageSums):
    """Daily (UTC) sums per customer: spend per customer over any range of whole days."""

    customer_id = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["bucket", "customer_id"], name="usage_daily_c_uniq")]
        indexes = [models.Index(fields=["customer_id", "bucket"], name="usage_daily_c_customer")]

    def __str__(self) -> str:
        return f"{self.bucket:%Y-%m-%d} customer {self.customer_id}"


class UsageHourlyByCustomer(UsageSums):
    """Hourly sums per customer: a customer's recent hours, and the edges of day ranges."""

    customer_id = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["bucket", "customer_id"], name="usage_hourly_c_uniq")]
        indexes = [models.Index(fields=["customer_id", "bucket"], name="usage_hourly_c_customer")]

    def __str__(self) -> str:
        return f"{self.bucket:%Y-%m-%d %H:00} customer {self.customer_id}"


class UsageHourlyByModel(UsageSums):
    """Hourly sums per model: the organisation's hour-by-hour view in a few rows an hour."""

    provider = models.CharField(max_length=100)
    model = models.CharField(max_length=200)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["bucket", "provider", "model"], name="usage_hourly_m_uniq")]

    def __str__(self) -> str:
        return f"{self.bucket:%Y-%m-%d %H:00} {self.provider}/{self.model}"


class UsageDailyByModel(UsageSums):
    """Daily (UTC) sums per model: the organisation's totals and model mix, in a few rows a day."""

    provider = models.CharField(max_length=100)
    model = models.CharField(max_length=200)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["bucket", "provider", "model"], name="usage_daily_m_uniq")]

    def __str__(self) -> str:
        return f"{self.bucket:%Y-%m-%d} {self.provider}/{self.model}"


class UsageDailyByStage(UsageSums):
    """Daily (UTC) sums per pipeline stage: the overview's stage mix without the hourly rows."""

    pipeline_stage = models.CharField(max_length=100, default="")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["bucket", "pipeline_stage"], name="usage_daily_stage_uniq")]

    def __str__(self) -> str:
        return f"{self.bucket:%Y-%m-%d} {self.pipeline_stage or '(none)'}"


class UsageDailyByKey(UsageSums):
    """Daily (UTC) sums per virtual key: the keys table's spend in a few rows per key."""

    virtual_key_id = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["bucket", "virtual_key_id"], name="usage_daily_key_uniq")]
        indexes = [models.Index(fields=["virtual_key_id", "bucket"], name="usage_daily_key_key")]

    def __str__(self) -> str:
        return f"{self.bucket:%Y-%m-%d} key {self.virtual_key_id}"


assert all(hasattr(UsageRollup, name) for name in BUCKET_FIELDS), "rollup columns must match the histogram"


class RepriceState(models.TextChoices):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class RepriceJob(models.Model):
    """An admin's request to price stored events again from the catalog, with progress.

    Events whose cost the gateway reported keep it; the others (catalog-priced and
    unpriced) are priced by the catalog as it stands, and the rollups and budget periods
    move by the difference.
    """

    start = models.DateTimeField()
    end = models.DateTimeField()
    provider = models.CharField(max_length=100, blank=True, default="")
    model = models.CharField(max_length=200, blank=True, default="")
    state = models.CharField(max_length=10, choices=RepriceState.choices, default=RepriceState.PENDING)
    requested_by = models.CharField(max_length=200)
    events_total = models.BigIntegerField(default=0)
    events_done = models.BigIntegerField(default=0)
    events_changed = models.BigIntegerField(default=0)
    # The last event id handled: a job that resumes after a crash continues from here.
    last_event_id = models.BigIntegerField(default=0)
    cost_delta = models.DecimalField(max_digits=20, decimal_places=10, default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"re-price {self.start:%Y-%m-%d}..{self.end:%Y-%m-%d} ({self.state})"

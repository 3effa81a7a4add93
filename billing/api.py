"""Usage and price endpoints."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import django_filters
from django.db.models import QuerySet
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from billing.catalog import RATE_FIELDS
from billing.models import ModelPrice, RepriceJob
from billing.repricing import PRICE_FIELDS, add_price, request_reprice
from billing.selectors import GRANULARITIES, GROUP_DIMENSIONS, UsageQuery, list_prices, list_usage
from billing.tiers import MONEY_MEASURES
from bursar.api import CSVRenderer, Pagination
from bursar.errors import InvalidInput
from governance import permissions
from governance.actors import actor_from_request
from governance.api.permissions import RoleRule, request_access
from governance.api.renderers import ScopedBrowsableAPIRenderer
from governance.models.organization import currency_validator
from governance.services.budgets import validate_timezone

# Bounds on one answer: hour buckets over more than this are refused (ask for days).
MAX_HOURLY_RANGE = timedelta(days=93)
DEFAULT_RANGE = timedelta(days=30)


EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)


def _within_years(value: datetime) -> datetime:
    try:
        utc = value.astimezone(UTC)
    except (OverflowError, ValueError):
        raise serializers.ValidationError("is out of range") from None
    if not EARLIEST <= utc < LATEST:
        raise serializers.ValidationError("must be between 2000 and 2100")
    return utc


def _floor_hour(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _ceil_hour(value: datetime) -> datetime:
    floor = _floor_hour(value)
    return floor if floor == value else floor + timedelta(hours=1)


def _csv_list(value: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in value.split(",") if item.strip())


class UsageQuerySerializer(serializers.Serializer[Any]):
    start = serializers.DateTimeField(required=False, help_text="inclusive; default: 30 days before end")
    end = serializers.DateTimeField(required=False, help_text="exclusive; default: the end of the current hour")
    granularity = serializers.ChoiceField(choices=GRANULARITIES, default="day")
    group_by = serializers.CharField(
        required=False, default="", help_text=f"comma-separated: {', '.join(GROUP_DIMENSIONS)}"
    )
    timezone = serializers.CharField(
        required=False, default="UTC", help_text="IANA name; day and month buckets follow it"
    )
    customer = serializers.CharField(required=False, default="", help_text="external_id(s), comma-separated")
    team = serializers.CharField(required=False, default="", help_text="slug(s)")
    virtual_key = serializers.CharField(required=False, default="", help_text="public id(s)")
    provider = serializers.CharField(required=False, default="")
    model = serializers.CharField(required=False, default="")
    pipeline_stage = serializers.CharField(required=False, default="")

    def validate_group_by(self, value: str) -> tuple[str, ...]:
        dimensions = _csv_list(value)
        unknown = [item for item in dimensions if item not in GROUP_DIMENSIONS]
        if unknown:
            raise serializers.ValidationError(
                f"unknown dimension(s) {', '.join(unknown)}; use {', '.join(GROUP_DIMENSIONS)}"
            )
        return tuple(dict.fromkeys(dimensions))

    def validate_timezone(self, value: str) -> str:
        try:
            return validate_timezone(value)
        except InvalidInput as error:
            raise serializers.ValidationError(error.message) from None

    def validate_start(self, value: datetime) -> datetime:
        return _within_years(value)

    def validate_end(self, value: datetime) -> datetime:
        return _within_years(value)

    def to_query(self) -> UsageQuery:
        data = self.validated_data
        # Rollups are hourly: the range widens to whole hours (start down, end up).
        end = _ceil_hour(data.get("end") or timezone.now())
        start = _floor_hour(data.get("start") or end - DEFAULT_RANGE)
        if start >= end:
            raise serializers.ValidationError({"start": ["must be before end"]})
        if data["granularity"] == "hour" and end - start > MAX_HOURLY_RANGE:
            raise serializers.ValidationError({"granularity": ["hourly buckets cover at most 93 days; use day"]})
        return UsageQuery(
            start=start.astimezone(UTC),
            end=end.astimezone(UTC),
            granularity=data["granularity"],
            group_by=data["group_by"],
            timezone=data["timezone"],
            customers=_csv_list(data["customer"]),
            teams=_csv_list(data["team"]),
            virtual_keys=_csv_list(data["virtual_key"]),
            providers=_csv_list(data["provider"]),
            models=_csv_list(data["model"]),
            pipeline_stages=_csv_list(data["pipeline_stage"]),
        )


class UsageRowSerializer(serializers.Serializer[Any]):
    bucket = serializers.DateTimeField(required=False)
    customer = serializers.CharField(required=False, allow_null=True)
    team = serializers.CharField(required=False, allow_null=True)
    virtual_key = serializers.CharField(required=False, allow_null=True)
    provider = serializers.CharField(required=False, allow_null=True)
    model = serializers.CharField(required=False, allow_null=True)
    pipeline_stage = serializers.CharField(required=False, allow_null=True)
    requests = serializers.IntegerField()
    input_tokens = serializers.IntegerField()
    output_tokens = serializers.IntegerField()
    cached_input_tokens = serializers.IntegerField()
    cache_write_tokens = serializers.IntegerField()
    images = serializers.IntegerField()
    cost = serializers.DecimalField(max_digits=30, decimal_places=10)
    unpriced_requests = serializers.IntegerField()
    cache_hits = serializers.IntegerField()
    cache_savings = serializers.DecimalField(max_digits=30, decimal_places=10)
    fallbacks = serializers.IntegerField()
    latency_avg_ms = serializers.IntegerField(allow_null=True)
    latency_p50_ms = serializers.IntegerField(allow_null=True)
    latency_p95_ms = serializers.IntegerField(allow_null=True)
    latency_p99_ms = serializers.IntegerField(allow_null=True)


# "errors" would shadow Serializer.errors as a class attribute; it is a documented column.
UsageRowSerializer._declared_fields["errors"] = serializers.IntegerField()


def _present(row: dict[str, Any]) -> dict[str, Any]:
    """JSON-ready values: money as decimal strings, times as RFC 3339."""
    out: dict[str, Any] = {}
    for name, value in row.items():
        if name in MONEY_MEASURES:
            out[name] = format(value.normalize(), "f") if value else "0"
        elif isinstance(value, datetime):
            out[name] = value.isoformat()
        else:
            out[name] = value
    return out


class UsageApi(APIView):
    permission_classes = [RoleRule]
    read_rule = staticmethod(permissions.can_view_usage)
    write_rule = staticmethod(permissions.can_view_usage)
    renderer_classes = [JSONRenderer, ScopedBrowsableAPIRenderer, CSVRenderer]

    @extend_schema(
        parameters=[UsageQuerySerializer],
        responses=UsageRowSerializer(many=True),
        description="Spend and usage from hourly rollups. `format=csv` (or `Accept: text/csv`) returns all rows.",
    )
    def get(self, request: Request) -> Response:
        params = UsageQuerySerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        # A scoped caller's rows are only those of its customers and teams.
        query = dataclasses.replace(params.to_query(), within=request_access(request).spend)
        rows = [_present(row) for row in list_usage(query)]
        if request.accepted_renderer.format == "csv":
            return Response(rows, headers={"Content-Disposition": 'attachment; filename="usage.csv"'})
        paginator = Pagination()
        page: list[dict[str, Any]] = paginator.paginate_queryset(rows, request, view=self)  # type: ignore[arg-type,assignment]
        return paginator.get_paginated_response(page)


class PriceSerializer(serializers.ModelSerializer[ModelPrice]):
    class Meta:
        model = ModelPrice
        fields = ["id", *PRICE_FIELDS, "source", "created_at"]
        read_only_fields = ["id", "source", "created_at"]
        extra_kwargs = {
            "currency": {"validators": [currency_validator]},
            **{name: {"min_value": Decimal(0)} for name in RATE_FIELDS},
        }

    def validate_effective_from(self, value: datetime) -> datetime:
        return _within_years(value)


class PriceFilter(django_filters.FilterSet):
    class Meta:
        model = ModelPrice
        fields = ["provider", "model"]


class PricesApi(generics.ListCreateAPIView[ModelPrice]):
    permission_classes = [RoleRule]
    read_rule = staticmethod(permissions.can_view_usage)
    write_rule = staticmethod(permissions.can_reprice)
    serializer_class = PriceSerializer
    filterset_class = PriceFilter
    search_fields = ["provider", "model"]

    def get_queryset(self) -> QuerySet[ModelPrice]:
        return list_prices()

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        body = PriceSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        price = add_price(actor=actor_from_request(request, via="api"), **body.validated_data)
        return Response(PriceSerializer(price).data, status=201)


class RepriceRequestSerializer(serializers.Serializer[Any]):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    provider = serializers.CharField(required=False, default="", allow_blank=True, max_length=100)
    model = serializers.CharField(required=False, default="", allow_blank=True, max_length=200)

    def validate_start(self, value: datetime) -> datetime:
        return _within_years(value)

    def validate_end(self, value: datetime) -> datetime:
        return _within_years(value)


class RepriceJobSerializer(serializers.ModelSerializer[RepriceJob]):
    percent_done = serializers.SerializerMethodField()

    class Meta:
        model = RepriceJob
        fields = [
            "id",
            "start",
            "end",
            "provider",
            "model",
            "state",
            "requested_by",
            "events_total",
            "events_done",
            "events_changed",
            "percent_done",
            "cost_delta",
            "created_at",
            "finished_at",
            "last_error",
        ]

    def get_percent_done(self, job: RepriceJob) -> float:
        return 100.0 if not job.events_total else round(min(job.events_done / job.events_total, 1) * 100, 1)


class RepriceApi(APIView):
    permission_classes = [RoleRule]
    read_rule = staticmethod(permissions.can_reprice)
    write_rule = staticmethod(permissions.can_reprice)

    @extend_schema(request=RepriceRequestSerializer, responses={202: RepriceJobSerializer})
    def post(self, request: Request) -> Response:
        body = RepriceRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        job = request_reprice(actor=actor_from_request(request, via="api"), **body.validated_data)
        return Response(RepriceJobSerializer(job).data, status=202, headers={"Location": f"{request.path}{job.pk}/"})


class RepriceJobApi(generics.RetrieveAPIView[RepriceJob]):
    permission_classes = [RoleRule]
    read_rule = staticmethod(permissions.can_reprice)
    write_rule = staticmethod(permissions.can_reprice)
    serializer_class = RepriceJobSerializer
    queryset = RepriceJob.objects.all()

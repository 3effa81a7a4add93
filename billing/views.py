"""Spend pages: overview, customers, and the spend of one customer, team or key.

Every figure comes from the rollups through ``billing.selectors`` (never from events,
except the explicit drill-down to raw events of one scope)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone

from billing import charts
from billing.api import PriceSerializer, RepriceRequestSerializer
from billing.models import ModelPrice, RepriceJob, UsageEvent
from billing.repricing import add_price, request_reprice
from billing.selectors import UsageQuery, list_totals, list_usage, sum_units
from bursar.errors import DomainError
from bursar.pages import (
    DateRange,
    access_of,
    csv_response,
    date_range,
    page,
    page_of,
    percent_change,
    wants_csv,
)
from governance import permissions
from governance import selectors as governance_selectors
from governance.actors import actor_from_request
from governance.models import Alert, Budget, Customer, Team, VirtualKey, VirtualKeyStatus
from governance.permissions import Access, Visibility, budget_q
from governance.selectors import BudgetRow

PRICE_RATE_COLUMNS = (
    "input_per_million",
    "cached_input_per_million",
    "cache_write_per_million",
    "output_per_million",
    "per_image",
    "per_gpu_second",
    "per_request",
)
EVENT_CSV_COLUMNS = (
    "occurred_at",
    "request_id",
    "provider",
    "model",
    "status",
    "input_tokens",
    "output_tokens",
    "cost",
    "latency_ms",
)
EVENT_CSV_HEADERS = {"cost": "cost_usd"}
BREAKDOWNS = {"model": "Model", "provider": "Provider", "team": "Team", "pipeline_stage": "Pipeline stage"}


def _total(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return rows[0] if rows else {"cost": Decimal(0), "requests": 0, "errors": 0, "cache_hits": 0}


def _usage(window: DateRange, within: Visibility, **filters: Any) -> list[dict[str, Any]]:
    return list_usage(UsageQuery(start=window.start, end=window.end, within=within, **filters))


def _totals(window: DateRange, dimension: str, within: Visibility, **filters: Any) -> dict[str, dict[str, Any]]:
    """Cost and requests per ``dimension`` over the window, by its display name."""
    query = UsageQuery(
        start=window.start, end=window.end, granularity="total", group_by=(dimension,), within=within, **filters
    )
    return {row[dimension]: row for row in list_totals(query)}


def _near_caps(now: Any, within: Visibility, *, limit: int = 8) -> list[BudgetRow]:
    budgets = list(governance_selectors.list_budgets(within))
    statuses = governance_selectors.budget_statuses(budgets, now=now)
    flagged = [BudgetRow(budget, statuses[budget.pk]) for budget in budgets if statuses[budget.pk].state != "ok"]
    return sorted(flagged, key=lambda row: -row.status.percent_used)[:limit]


@page(permissions.can_use_dashboard)
def overview(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    window = date_range(request, now=now)
    access = access_of(request)
    within = access.spend
    context: dict[str, Any] = {
        "window": window,
        "summary": governance_selectors.get_governance_summary(now=now, within=within, keys_within=access.keys),
    }
    # A team lead's largest spenders are its teams, not customers it cannot see whole.
    top_dimension = "customer" if within.everything or within.customer_ids else "team"
    if permissions.can_view_usage(access):
        current = _total(_usage(window, within, granularity="total"))
        previous = _total(_usage(window.previous, within, granularity="total"))
        month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        next_month = (month_start + timedelta(days=32)).replace(day=1)
        month = _total(list_usage(UsageQuery(start=month_start, end=now, granularity="total", within=within)))
        elapsed = max((now - month_start).total_seconds(), 3600)
        context |= {
            "spend": current,
            "previous": previous,
            "change": percent_change(current["cost"], previous["cost"]),
            "burn_per_day": current["cost"] / Decimal(str(max(window.days, 1 / 24))),
            "month_to_date": month["cost"],
            "month_forecast": month["cost"] * Decimal((next_month - month_start).total_seconds() / elapsed),
            "top_dimension": top_dimension,
            "top_customers": _top(window, within, top_dimension),
            "top_models": _top(window, within, "model"),
            "top_stages": _top(window, within, "pipeline_stage"),
            "chart": charts.stacked_spend(
                _usage(window, within, granularity=window.granularity, group_by=("provider",)), "provider"
            ),
        }
    if permissions.can_view_organization(access):
        context["near_caps"] = _near_caps(now, within)
    if permissions.can_view_alerts(access):
        context["alerts"] = list(governance_selectors.list_alerts(within).select_related("budget")[:8])
    if permissions.can_view_gateway_nodes(access):
        context["nodes"] = list(governance_selectors.list_gateway_nodes())
        context["latest_version"] = governance_selectors.latest_config_version()
    return render(request, "dashboard/overview.html", context)


def _top(window: DateRange, within: Visibility, dimension: str, limit: int = 5) -> list[dict[str, Any]]:
    rows = _usage(window, within, granularity="total", group_by=(dimension,))
    return sorted(rows, key=lambda row: -row["cost"])[:limit]


@dataclass
class CustomerRow:
    customer: Customer
    cost: Decimal
    previous: Decimal
    change: float | None
    requests: int
    budget_percent: Decimal | None


@page(permissions.can_view_usage)
def customers(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    window = date_range(request, now=now)
    within = access_of(request).spend
    search = request.GET.get("q", "").strip()
    listed = governance_selectors.list_customers(within)
    if search:
        listed = listed.filter(Q(name__icontains=search) | Q(external_id__icontains=search))
    current, previous = _totals(window, "customer", within), _totals(window.previous, "customer", within)
    use = governance_selectors.budget_use_by_customer(now=now, within=within)
    rows = []
    for customer in listed:
        spent = current.get(customer.external_id, {})
        before = previous.get(customer.external_id, {})
        cost, prior = spent.get("cost", Decimal(0)), before.get("cost", Decimal(0))
        rows.append(
            CustomerRow(
                customer, cost, prior, percent_change(cost, prior), spent.get("requests", 0), use.get(customer.pk)
            )
        )
    sort = request.GET.get("sort", "-cost")
    keys = {
        "name": lambda r: r.customer.name.lower(),
        "cost": lambda r: r.cost,
        "change": lambda r: r.change if r.change is not None else float("-inf"),
        "requests": lambda r: r.requests,
        "budget": lambda r: r.budget_percent if r.budget_percent is not None else Decimal(-1),
    }
    field = sort.lstrip("-")
    rows.sort(key=keys.get(field, keys["cost"]), reverse=sort.startswith("-"))
    if wants_csv(request):
        return csv_response(
            f"customers_{window.start_date}_{window.end_date}.csv",
            [
                "external_id",
                "name",
                "currency",
                "cost_usd",
                "previous_cost_usd",
                "change_percent",
                "requests",
                "budget_used_percent",
            ],
            [
                [
                    r.customer.external_id,
                    r.customer.name,
                    r.customer.currency,
                    r.cost,
                    r.previous,
                    None if r.change is None else round(r.change, 2),
                    r.requests,
                    r.budget_percent,
                ]
                for r in rows
            ],
        )
    return render(
        request,
        "dashboard/customers.html",
        {
            "window": window,
            "rows": rows,
            "search": search,
            "sort": sort,
            "total": sum((r.cost for r in rows), Decimal(0)),
        },
    )


@page(permissions.can_view_usage)
def teams(request: HttpRequest) -> HttpResponse:
    window = date_range(request)
    within = access_of(request).spend
    search = request.GET.get("q", "").strip()
    listed = governance_selectors.list_teams(within).order_by("slug")
    if search:
        listed = listed.filter(Q(name__icontains=search) | Q(slug__icontains=search))
    current, previous = _totals(window, "team", within), _totals(window.previous, "team", within)
    rows = []
    for team in listed:
        cost = current.get(team.slug, {}).get("cost", Decimal(0))
        prior = previous.get(team.slug, {}).get("cost", Decimal(0))
        rows.append({"team": team, "cost": cost, "change": percent_change(cost, prior),
                     "currency": team.customer.currency if team.customer else "USD",
                     "requests": current.get(team.slug, {}).get("requests", 0)})  # fmt: skip
    rows.sort(key=lambda row: -row["cost"])
    if wants_csv(request):
        return csv_response(
            f"teams_{window.start_date}_{window.end_date}.csv",
            ["slug", "name", "customer", "cost_usd", "change_percent", "requests"],
            [
                [r["team"].slug, r["team"].name, r["team"].customer.external_id if r["team"].customer else "",
                 r["cost"], None if r["change"] is None else round(r["change"], 2), r["requests"]]
                for r in rows
            ],
        )  # fmt: skip
    return render(request, "dashboard/teams.html", {"window": window, "rows": rows, "search": search})


@page(permissions.can_view_virtual_keys)
def keys(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    window = date_range(request, now=now)
    access = access_of(request)
    listed = governance_selectors.list_virtual_keys(access.keys).order_by("-created_at", "-id")
    search, status = request.GET.get("q", "").strip(), request.GET.get("status", "")
    if search:
        listed = listed.filter(Q(name__icontains=search) | Q(public_id__icontains=search) | Q(secret_prefix=search))
    if status in VirtualKeyStatus.values:
        listed = governance_selectors.filter_virtual_keys_by_status(listed, status=status, now=now)
    if wants_csv(request):
        return csv_response(
            "virtual_keys.csv",
            [
                "public_id",
                "name",
                "team",
                "customer",
                "status",
                "allowed_models",
                "requests_per_minute",
                "tokens_per_minute",
                "expires_at",
                "created_at",
            ],
            [
                [
                    k.public_id,
                    k.name,
                    k.team.slug if k.team else "",
                    k.customer.external_id if k.customer else "",
                    k.effective_status(now),
                    " ".join(k.allowed_models),
                    k.requests_per_minute,
                    k.tokens_per_minute,
                    k.expires_at,
                    k.created_at,
                ]
                for k in listed.iterator(chunk_size=2000)
            ],
        )
    rows, number, has_next = page_of(listed, request)
    spend = (
        _totals(window, "virtual_key", access.spend.union(access.keys), virtual_keys=tuple(k.public_id for k in rows))
        if rows
        else {}
    )
    return render(
        request,
        "dashboard/keys.html",
        {
            "rows": [
                (key, spend.get(key.public_id, {}), key.customer.currency if key.customer else "USD") for key in rows
            ],
            "window": window,
            "now": now,
            "search": search,
            "status": status,
            "page": number,
            "has_next": has_next,
            "statuses": VirtualKeyStatus.values,
        },
    )


@dataclass(frozen=True)
class Scope:
    kind: str  # customer, team or virtual_key
    obj: Any
    title: str
    currency: str
    filters: dict[str, Any]
    access: Access


def _scope(kind: str, pk: int, access: Access) -> Scope:
    """The customer, team or key, if the access may see it (404 otherwise: a scoped user
    learns nothing of what lies outside)."""
    if kind == "customer":
        customer = get_object_or_404(governance_selectors.list_customers(access.spend), pk=pk)
        filters = {"customers": (customer.external_id,), "within": access.spend}
        return Scope(kind, customer, customer.name, customer.currency, filters, access)
    if kind == "team":
        team = get_object_or_404(governance_selectors.list_teams(access.spend), pk=pk)
        currency = team.customer.currency if team.customer else "USD"
        return Scope(kind, team, team.name, currency, {"teams": (team.slug,), "within": access.spend}, access)
    key = get_object_or_404(governance_selectors.list_virtual_keys(access.keys), pk=pk)
    currency = key.customer.currency if key.customer else "USD"
    filters = {"virtual_keys": (key.public_id,), "within": access.spend.union(access.keys)}
    return Scope(kind, key, key.name, currency, filters, access)


def _scope_usage(window: DateRange, scope: Scope, granularity: str = "total", **query: Any) -> list[dict[str, Any]]:
    return list_usage(UsageQuery(start=window.start, end=window.end, granularity=granularity, **scope.filters, **query))


def _spend_page(request: HttpRequest, scope: Scope) -> HttpResponse:
    now = timezone.now()
    window = date_range(request, now=now)
    breakdown = request.GET.get("by", "model")
    if breakdown not in BREAKDOWNS:
        breakdown = "model"
    series = _scope_usage(window, scope, window.granularity, group_by=(breakdown,))
    overall = _scope_usage(window, scope, window.granularity)
    if wants_csv(request):
        return csv_response(
            f"{scope.kind}_{scope.obj.pk}_{window.start_date}_{window.end_date}.csv",
            [
                "bucket",
                breakdown,
                "requests",
                "errors",
                "input_tokens",
                "output_tokens",
                "cached_input_tokens",
                "cost_usd",
                "cache_hits",
                "cache_savings_usd",
                "fallbacks",
                "latency_p50_ms",
                "latency_p95_ms",
                "latency_p99_ms",
            ],
            [
                [
                    row["bucket"],
                    row.get(breakdown),
                    row["requests"],
                    row["errors"],
                    row["input_tokens"],
                    row["output_tokens"],
                    row["cached_input_tokens"],
                    row["cost"],
                    row["cache_hits"],
                    row["cache_savings"],
                    row["fallbacks"],
                    row["latency_p50_ms"],
                    row["latency_p95_ms"],
                    row["latency_p99_ms"],
                ]
                for row in series
            ],
        )
    total = _total(_scope_usage(window, scope))
    previous = _total(_scope_usage(window.previous, scope))
    requests = total.get("requests") or 0
    context: dict[str, Any] = {
        "scope": scope,
        "window": window,
        "breakdown": breakdown,
        "breakdowns": BREAKDOWNS,
        "total": total,
        "previous": previous,
        "change": percent_change(total.get("cost", 0), previous.get("cost", 0)),
        "error_rate": (total["errors"] / requests * 100) if requests else None,
        "fallback_rate": (total["fallbacks"] / requests * 100) if requests else None,
        "cache_rate": (total["cache_hits"] / requests * 100) if requests else None,
        "cost_per_request": (total["cost"] / requests) if requests else None,
        "spend_chart": charts.stacked_spend(series, breakdown) if series else "",
        "latency_chart": charts.latency(overall) if overall else "",
        "by_breakdown": sorted(_scope_usage(window, scope, group_by=(breakdown,)), key=lambda r: -r["cost"]),
    }
    ids = {"customer": "customer_id", "team": "team_id", "virtual_key": "virtual_key_id"}
    units = sum_units(
        start=window.start, end=window.end, within=scope.filters["within"], **{ids[scope.kind]: scope.obj.pk}
    )
    context["per_unit"] = [
        {"unit": unit, "amount": amount, "cost": (total.get("cost") or Decimal(0)) / amount}
        for unit, amount in units.items()
    ]
    context |= _related(scope, now)
    context["can_manage_key"] = scope.kind == "virtual_key" and permissions.can_manage_key(scope.access, scope.obj)
    return render(request, "dashboard/spend.html", context)


def _related(scope: Scope, now: Any) -> dict[str, Any]:
    """The teams, keys, budgets and alerts that belong to the scope."""
    if scope.kind == "customer":
        keys = VirtualKey.objects.filter(Q(customer=scope.obj) | Q(team__customer=scope.obj))
        budgets = Budget.objects.filter(customer=scope.obj)
        teams = list(Team.objects.filter(customer=scope.obj))
    elif scope.kind == "team":
        keys = VirtualKey.objects.filter(team=scope.obj)
        budgets = Budget.objects.filter(team=scope.obj)
        teams = []
    else:
        keys = VirtualKey.objects.filter(pk=scope.obj.pk)
        budgets = Budget.objects.filter(virtual_key=scope.obj)
        teams = []
    keys = keys.filter(scope.access.keys.q())
    budget_list = list(budgets.filter(budget_q(scope.access.spend)).select_related("customer", "team", "virtual_key"))
    statuses = governance_selectors.budget_statuses(budget_list, now=now)
    return {
        "teams": teams,
        "keys": list(keys.select_related("team").order_by("name")[:50]),
        "budgets": [BudgetRow(b, statuses[b.pk]) for b in budget_list],
        "alerts": list(Alert.objects.filter(budget__in=budget_list).select_related("period")[:10]),
    }


@page(permissions.can_view_usage)
def customer_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return _spend_page(request, _scope("customer", pk, access_of(request)))


@page(permissions.can_view_usage)
def team_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return _spend_page(request, _scope("team", pk, access_of(request)))


@page(permissions.can_view_virtual_keys)  # finance reads spend by customer and team, not keys
def key_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return _spend_page(request, _scope("virtual_key", pk, access_of(request)))


@page(permissions.can_view_usage)
def scope_events(request: HttpRequest, kind: str, pk: str) -> HttpResponse:
    """The raw events of one customer, team or key in the range, newest first."""
    access = access_of(request)
    if kind == "virtual_key" and not permissions.can_view_virtual_keys(access):
        raise PermissionDenied("Your role does not allow key pages.")
    scope = _scope(kind, int(pk), access)
    window = date_range(request)
    column = {"customer": "customer_id", "team": "team_id", "virtual_key": "virtual_key_id"}[kind]
    events = (
        UsageEvent.objects.filter(**{column: scope.obj.pk}, occurred_at__gte=window.start, occurred_at__lt=window.end)
        .filter(scope.filters["within"].usage_q())
        .order_by("-occurred_at", "-id")
    )
    if wants_csv(request):
        return csv_response(
            f"{kind}_{pk}_events.csv",
            [EVENT_CSV_HEADERS.get(name, name) for name in EVENT_CSV_COLUMNS],
            events.values_list(*EVENT_CSV_COLUMNS)[:100_000],
        )
    rows, number, has_next = page_of(events, request)
    return render(
        request,
        "dashboard/events.html",
        {"scope": scope, "window": window, "events": rows, "page": number, "has_next": has_next},
    )


@page(permissions.can_view_usage)
def prices(request: HttpRequest) -> HttpResponse:
    """The catalog (searchable), adding a price and re-pricing a range (admins)."""
    errors: dict[str, str] = {}
    if request.method == "POST":
        if not permissions.can_reprice(access_of(request)):
            raise PermissionDenied("Only admins change prices.")
        actor = actor_from_request(request, via="ui")
        is_price = request.POST.get("action") == "add"
        data = {k: v for k, v in request.POST.items() if v != "" and k not in ("csrfmiddlewaretoken", "action")}
        serializer = (PriceSerializer if is_price else RepriceRequestSerializer)(data=data)
        if serializer.is_valid():
            try:
                if is_price:
                    add_price(actor=actor, **serializer.validated_data)
                    messages.success(request, "Price added. Stored events keep their cost until you re-price them.")
                else:
                    job = request_reprice(actor=actor, **serializer.validated_data)
                    messages.success(request, f"Re-pricing {job.events_total} events; progress below.")
                return redirect("dashboard:prices")
            except DomainError as error:
                errors = {error.field or "form": str(error)}
        else:
            errors = {field: " ".join(str(e) for e in value) for field, value in serializer.errors.items()}
    # Re-pricing jobs sum over every customer: for those who may re-price.
    jobs = list(RepriceJob.objects.order_by("-created_at")[:10]) if permissions.can_reprice(access_of(request)) else []
    search = request.GET.get("q", "").strip()
    catalog = ModelPrice.objects.order_by("provider", "model", "-effective_from")
    if search:
        catalog = catalog.filter(Q(provider__icontains=search) | Q(model__icontains=search))
    if wants_csv(request):
        columns = ["provider", "model", "effective_from", "currency", *PRICE_RATE_COLUMNS, "source"]
        return csv_response("prices.csv", columns, catalog.values_list(*columns))
    return render(
        request,
        "dashboard/prices.html",
        {
            "catalog": list(catalog[:500]),
            "search": search,
            "errors": errors,
            "form": request.POST,
            "jobs": jobs,
            "refreshing": any(job.state in ("pending", "running") for job in jobs),
        },
    )

"""Management pages: keys, budgets, alerts and channels, gateway nodes, the audit log.

Forms are validated by the same serializers as the API and written by the same services,
so a page can do nothing the API would refuse, and everything is audited alike."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from rest_framework.serializers import BaseSerializer

from bursar.errors import DomainError
from bursar.pages import access_of, csv_response, date_range, int_param, page, page_of, percentages, wants_csv
from governance import permissions, selectors
from governance.actors import actor_from_request
from governance.api import serializers as s
from governance.models import (
    AlertChannel,
    AuditVia,
    Budget,
    BudgetScope,
    VirtualKey,
)
from governance.services import alerts as alert_services
from governance.services import budgets as budget_services
from governance.services import config as config_services
from governance.services import nodes as node_services
from governance.services import virtual_keys as key_services


def _errors(serializer: BaseSerializer[Any]) -> dict[str, str]:
    found: dict[str, Any] = dict(serializer.errors)
    return {field: " ".join(str(e) for e in errors) for field, errors in found.items()}


def _lines(value: str) -> list[str]:
    return [item.strip() for item in value.replace(",", "\n").splitlines() if item.strip()]


# --- keys ---------------------------------------------------------------------------------


def _owners(within: permissions.Visibility = permissions.EVERYTHING) -> dict[str, Any]:
    return {
        "teams": selectors.list_teams(within).order_by("slug"),
        "customers": selectors.list_customers(within),
    }


@page(permissions.can_manage_virtual_keys)
def issue_key(request: HttpRequest) -> HttpResponse:
    """The form; on success the secret is shown on this response only, never again. Team
    leads issue into the teams they lead."""
    access = access_of(request)
    context: dict[str, Any] = {"form": {}, "errors": {}, **_owners(access.manages_keys)}
    refusal = None
    if request.method == "POST":
        form = request.POST
        data: dict[str, Any] = {
            "name": form.get("name", ""),
            "team": form.get("team") or None,
            "customer": form.get("customer") or None,
            "allowed_models": _lines(form.get("allowed_models", "")),
            "rate_limit": {
                "requests_per_minute": form.get("requests_per_minute") or None,
                "tokens_per_minute": form.get("tokens_per_minute") or None,
            },
            "expires_at": form.get("expires_at") or None,
        }
        serializer = s.VirtualKeyWriteSerializer(data=data)
        context["form"] = form
        if serializer.is_valid():
            owner = serializer.to_service_kwargs()
            customer = owner.get("customer")
            refusal = permissions.key_owner_refusal(
                access, team=owner.get("team"), customer_id=customer.pk if customer else None
            )
        if refusal:
            context["errors"] = {"team": refusal}
        elif serializer.is_valid():
            try:
                issued = key_services.issue_virtual_key(
                    actor=actor_from_request(request, via="ui"), now=timezone.now(), **serializer.to_service_kwargs()
                )
            except DomainError as error:
                context["errors"] = {error.field or "form": str(error)}
            else:
                return render(request, "dashboard/key_secret.html", {"key": issued.key, "secret": issued.secret})
        else:
            context["errors"] = _errors(serializer)
    # A team outside the ones this user leads is refused (403), with the form kept.
    return render(request, "dashboard/key_form.html", context, status=403 if refusal else 200)


def _managed_key(request: HttpRequest, pk: int) -> VirtualKey:
    """A key this user may rotate or revoke (404 for keys it cannot see, 403 for keys it
    can see but not change)."""
    access = access_of(request)
    key = get_object_or_404(selectors.list_virtual_keys(access.keys), pk=pk)
    if not permissions.can_manage_key(access, key):
        raise PermissionDenied("You can change keys only in teams you lead.")
    return key


@page(permissions.can_manage_virtual_keys)
def rotate_key(request: HttpRequest, pk: int) -> HttpResponse:
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    key = _managed_key(request, pk)
    seconds = int_param(request.POST.get("grace_seconds"), default=3600, maximum=30 * 86400)
    grace = timedelta(seconds=3600 if seconds is None else seconds)
    try:
        issued = key_services.rotate_virtual_key(
            actor=actor_from_request(request, via="ui"), key=key, grace=grace, now=timezone.now()
        )
    except DomainError as error:
        messages.error(request, str(error))
        return redirect("dashboard:key", pk=pk)
    return render(request, "dashboard/key_secret.html", {"key": issued.key, "secret": issued.secret, "rotated": True})


@page(permissions.can_manage_virtual_keys)
def revoke_key(request: HttpRequest, pk: int) -> HttpResponse:
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    key = _managed_key(request, pk)
    key_services.revoke_virtual_key(actor=actor_from_request(request, via="ui"), key=key, now=timezone.now())
    messages.success(request, f"Key {key.public_id} is revoked; gateways drop it with the next config revision.")
    return redirect("dashboard:key", pk=pk)


# --- budgets ------------------------------------------------------------------------------


@page(permissions.can_view_organization)
def budgets(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    listed = list(selectors.list_budgets(access_of(request).spend).order_by("scope_type", "id"))
    statuses = selectors.budget_statuses(listed, now=now)
    rows = [selectors.BudgetRow(budget, statuses[budget.pk]) for budget in listed]
    state = request.GET.get("state", "")
    if state:
        rows = [row for row in rows if row.status.state == state]
    if wants_csv(request):
        return csv_response(
            "budgets.csv",
            [
                "id",
                "scope_type",
                "scope",
                "period",
                "timezone",
                "amount",
                "currency",
                "limit",
                "spent",
                "percent_used",
                "forecast_period_spend",
                "state",
                "period_start",
                "period_end",
            ],
            [
                [
                    r.budget.pk,
                    r.budget.scope_type,
                    _scope_name(r.budget),
                    r.budget.period,
                    r.budget.timezone,
                    r.budget.amount,
                    r.budget.currency,
                    r.status.limit,
                    r.status.spent,
                    r.status.percent_used,
                    r.status.forecast_period_spend,
                    r.status.state,
                    r.status.period_start,
                    r.status.period_end,
                ]
                for r in rows
            ],
        )
    return render(request, "dashboard/budgets.html", {"rows": rows, "state": state})


def _scope_name(budget: Budget) -> str:
    if budget.customer is not None:
        return budget.customer.external_id
    if budget.team is not None:
        return budget.team.slug
    if budget.virtual_key is not None:
        return budget.virtual_key.public_id
    return "organization"


@page(permissions.can_view_organization)
def budget_detail(request: HttpRequest, pk: int) -> HttpResponse:
    access = access_of(request)
    budget = get_object_or_404(selectors.list_budgets(access.spend), pk=pk)
    now = timezone.now()
    errors: dict[str, str] = {}
    if request.method == "POST":
        if not permissions.can_manage_governance(access):
            raise PermissionDenied("Your role does not allow changes here.")
        errors = _change_budget(request, budget)
        if not errors:
            return redirect("dashboard:budget", pk=pk)
    status = selectors.budget_statuses([budget], now=now)[budget.pk]
    periods, number, has_next = page_of(selectors.list_budget_periods(budget), request)
    return render(
        request,
        "dashboard/budget.html",
        {
            "budget": budget,
            "scope_name": _scope_name(budget),
            "status": status,
            "periods": periods,
            "page": number,
            "has_next": has_next,
            "errors": errors,
            "now": now,
            "alerts": list(selectors.list_alerts(access.spend).filter(budget=budget)[:20]),
        },
    )


def _change_budget(request: HttpRequest, budget: Budget) -> dict[str, str]:
    actor = actor_from_request(request, via="ui")
    action = request.POST.get("action")
    try:
        if action == "update":
            thresholds = percentages(request.POST.get("soft_thresholds", ""))
            if thresholds is None:
                return {"soft_thresholds": "whole percentages separated by commas, e.g. 50, 80"}
            data = {
                "amount": request.POST.get("amount", ""),
                "soft_thresholds": thresholds,
                "hard_cap": request.POST.get("hard_cap") == "on",
            }
            serializer = s.BudgetWriteSerializer(data=data, partial=True)
            if not serializer.is_valid():
                return _errors(serializer)
            budget_services.update_budget(
                actor=actor, budget=budget, changes=dict(serializer.validated_data), now=timezone.now()
            )
            messages.success(request, "Budget saved and applied to the current period.")
        elif action == "override":
            override = s.BudgetOverrideSerializer(data=request.POST)
            if not override.is_valid():
                return _errors(override)
            budget_services.grant_override(actor=actor, budget=budget, now=timezone.now(), **override.validated_data)
            messages.success(request, "Override granted.")
        elif action == "clear_override":
            budget_services.clear_override(actor=actor, budget=budget, now=timezone.now())
            messages.success(request, "Override ended.")
    except DomainError as error:
        return {error.field or "form": str(error)}
    return {}


@page(permissions.can_manage_governance)
def new_budget(request: HttpRequest) -> HttpResponse:
    errors: dict[str, str] = {}
    form: Any = {}
    if request.method == "POST":
        form = request.POST
        data = {
            "scope_type": form.get("scope_type", ""),
            "scope_id": form.get(f"scope_{form.get('scope_type')}") or None,
            "amount": form.get("amount", ""),
            "currency": form.get("currency") or "USD",
            "period": form.get("period", "monthly"),
            "timezone": form.get("timezone") or "UTC",
            "soft_thresholds": percentages(form.get("soft_thresholds", "")) or [],
            "hard_cap": form.get("hard_cap") == "on",
        }
        serializer = s.BudgetWriteSerializer(data=data)
        if percentages(form.get("soft_thresholds", "")) is None:
            errors = {"soft_thresholds": "whole percentages separated by commas, e.g. 50, 80"}
        elif serializer.is_valid():
            try:
                budget = budget_services.create_budget(
                    actor=actor_from_request(request, via="ui"), now=timezone.now(), **serializer.validated_data
                )
            except DomainError as error:
                errors = {error.field or "form": str(error)}
            else:
                messages.success(request, f"Budget {budget.pk} created; it counts this period's spend so far.")
                return redirect("dashboard:budget", pk=budget.pk)
        else:
            errors = _errors(serializer)
    return render(
        request,
        "dashboard/budget_form.html",
        {"form": form, "errors": errors, "keys": VirtualKey.objects.order_by("name")[:500], **_owners()},
    )


# --- alerts and channels ------------------------------------------------------------------


@page(permissions.can_view_alerts)
def alerts(request: HttpRequest) -> HttpResponse:
    return _alerts_page(request)


def _alerts_page(
    request: HttpRequest, *, errors: dict[str, str] | None = None, form: Any = None, status: int = 200
) -> HttpResponse:
    """Alerts (range, kind and budget from the URL) and, for admins, the channels with the
    add form (``errors`` and ``form`` when a submission was refused)."""
    window = date_range(request)
    listed = (
        selectors.list_alerts(access_of(request).spend)
        .select_related("budget")
        .filter(fired_at__gte=window.start, fired_at__lt=window.end)
    )
    kind, budget = request.GET.get("kind", ""), request.GET.get("budget", "")
    if kind:
        listed = listed.filter(kind=kind)
    budget_id = int_param(budget, default=0, maximum=2**62)
    if budget_id:
        listed = listed.filter(budget_id=budget_id)
    if wants_csv(request):
        return csv_response(
            "alerts.csv",
            ["id", "fired_at", "budget", "kind", "threshold", "period_start", "spent", "limit", "message"],
            [
                [a.pk, a.fired_at, a.budget_id, a.kind, a.threshold, a.period.start, a.spent, a.limit, a.message]
                for a in listed[:50_000]
            ],
        )
    rows, number, has_next = page_of(listed, request)
    context: dict[str, Any] = {
        "rows": rows,
        "kind": kind,
        "budget": budget,
        "page": number,
        "has_next": has_next,
        "window": window,
    }
    if permissions.can_manage_alert_channels(access_of(request)):
        channels = list(selectors.list_alert_channels())
        context |= {"channels": channels, "errors": errors or {}, "form": form or {}, **_owners()}
    return render(request, "dashboard/alerts.html", context, status=status)


@page(permissions.can_manage_alert_channels)
def channels(request: HttpRequest) -> HttpResponse:
    """Add (secret shown once), enable, disable or delete a channel."""
    if request.method != "POST":
        return redirect("dashboard:alerts")
    actor = actor_from_request(request, via="ui")
    action = request.POST.get("action", "create")
    if action in ("enable", "disable", "delete"):
        channel = get_object_or_404(
            AlertChannel, pk=int_param(request.POST.get("channel"), default=0, maximum=2**62) or 0
        )
        if action == "delete":
            alert_services.delete_alert_channel(actor=actor, channel=channel)
        else:
            alert_services.update_alert_channel(actor=actor, channel=channel, changes={"enabled": action == "enable"})
        return redirect("dashboard:alerts")
    data = {
        "kind": request.POST.get("kind", ""),
        "target": request.POST.get("target", ""),
        "name": request.POST.get("name", ""),
        "scope_type": request.POST.get("scope_type") or BudgetScope.ORGANIZATION,
        "scope_id": request.POST.get(f"scope_{request.POST.get('scope_type')}") or None,
    }
    if request.POST.get("secret"):
        data["secret"] = request.POST["secret"]
    serializer = s.AlertChannelWriteSerializer(data=data)
    errors: dict[str, str] = {}
    if serializer.is_valid():
        try:
            created = alert_services.create_alert_channel(actor=actor, **serializer.validated_data)
        except DomainError as error:
            errors = {error.field or "form": str(error)}
        else:
            if created.secret:  # shown in this response only, never stored in a message or session
                return render(
                    request, "dashboard/channel_secret.html", {"channel": created.channel, "secret": created.secret}
                )
            messages.success(request, "Channel added.")
            return redirect("dashboard:alerts")
    else:
        errors = _errors(serializer)
    return _alerts_page(request, errors=errors, form=request.POST, status=400)


# --- gateway nodes ------------------------------------------------------------------------


@page(permissions.can_view_gateway_nodes)
def nodes(request: HttpRequest) -> HttpResponse:
    context: dict[str, Any] = {
        "nodes": list(selectors.list_gateway_nodes()),
        "latest_version": selectors.latest_config_version(),
        "now": timezone.now(),
        "errors": {},
        "form": {},
    }
    if request.method == "POST":
        if not permissions.can_manage_governance(access_of(request)):
            raise PermissionDenied("Your role does not allow changes here.")
        actor = actor_from_request(request, via="ui")
        if request.POST.get("action") == "push":
            latest = config_services.push_now(reason=f"push from the dashboard by {actor.label}")
            messages.success(request, f"Pushing revision {latest.version} to every push-mode node.")
            return redirect("dashboard:nodes")
        serializer = s.GatewayNodeWriteSerializer(data=request.POST)
        if serializer.is_valid():
            try:
                registered = node_services.register_gateway_node(actor=actor, **serializer.validated_data)
            except DomainError as error:
                context["errors"] = {error.field or "form": str(error)}
            else:
                context["registered"] = registered
                context["nodes"] = list(selectors.list_gateway_nodes())
        else:
            context["errors"] = _errors(serializer)
            context["form"] = request.POST
    return render(request, "dashboard/nodes.html", context)


# --- audit log ----------------------------------------------------------------------------


@page(permissions.can_view_audit)
def audit(request: HttpRequest) -> HttpResponse:
    entries = selectors.list_audit_entries().order_by("-id")
    names = ("action", "object_type", "object_id", "actor", "via", "since", "until")
    filters = {name: request.GET.get(name, "").strip() for name in names}
    if filters["action"]:
        entries = entries.filter(action__startswith=filters["action"])
    if filters["object_type"]:
        entries = entries.filter(object_type=filters["object_type"])
    if filters["object_id"]:
        entries = entries.filter(object_id=filters["object_id"])
    if filters["via"] in AuditVia.values:
        entries = entries.filter(via=filters["via"])
    if filters["actor"]:
        entries = entries.filter(actor__icontains=filters["actor"])
    for name, lookup in (("since", "at__gte"), ("until", "at__lt")):
        try:
            moment = parse_datetime(filters[name]) if filters[name] else None
            if moment is None and filters[name]:
                moment = parse_datetime(filters[name] + "T00:00:00+00:00")
        except ValueError:  # well formed but impossible, e.g. 2024-02-30
            moment = None
            messages.error(request, f"{name}: {filters[name]!r} is not a date; it was ignored.")
        if moment is not None:
            entries = entries.filter(**{lookup: moment})
    if wants_csv(request):
        return csv_response(
            "audit.csv",
            [
                "id",
                "at",
                "actor",
                "via",
                "ip",
                "action",
                "object_type",
                "object_id",
                "object",
                "before",
                "after",
                "entry_hash",
            ],
            [
                [
                    e.pk,
                    e.at,
                    e.actor,
                    e.via,
                    e.ip,
                    e.action,
                    e.object_type,
                    e.object_id,
                    e.object_repr,
                    e.before,
                    e.after,
                    e.entry_hash,
                ]
                for e in entries[:100_000]
            ],
        )
    rows, number, has_next = page_of(entries, request)
    object_types = sorted(set(selectors.list_audit_entries().values_list("object_type", flat=True).distinct()))
    return render(
        request,
        "dashboard/audit.html",
        {
            "rows": rows,
            "filters": filters,
            "page": number,
            "has_next": has_next,
            "object_types": object_types,
            "vias": AuditVia.values,
        },
    )

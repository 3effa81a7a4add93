"""Pages: the login-protected shell the dashboard issue fills in."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from governance import permissions, selectors


@login_required
def home(request: HttpRequest) -> HttpResponse:
    roles = permissions.roles_for(request.user)
    if not permissions.can_use_dashboard(roles):
        raise PermissionDenied("Your account has no role yet; ask an admin to grant one.")
    context = {
        "summary": selectors.get_governance_summary(now=timezone.now()),
        "roles": sorted(roles),
    }
    return render(request, "dashboard/home.html", context)

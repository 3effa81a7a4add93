"""What every page's navigation needs: which sections this user's roles may open."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.http import HttpRequest

from governance import permissions


def navigation(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    # Pages are for people; a DRF page rendered for an API token's principal gets no nav.
    if not isinstance(user, AbstractBaseUser) or not user.is_authenticated:
        return {"sso_only": settings.SSO_ONLY}
    access = permissions.access_for(user)
    return {
        "nav": {
            "spend": permissions.can_view_usage(access),
            "customers": permissions.can_view_usage(access)
            and bool(access.spend.everything or access.spend.customer_ids),
            "keys": permissions.can_view_virtual_keys(access),
            "budgets": permissions.can_view_organization(access),
            "alerts": permissions.can_view_alerts(access),
            "nodes": permissions.can_view_gateway_nodes(access),
            "prices": permissions.can_view_usage(access),
            "audit": permissions.can_view_audit(access),
            "users": permissions.can_manage_users(access),
            "manage": permissions.can_manage_governance(access),
            "manage_keys": permissions.can_manage_virtual_keys(access),
        },
        "roles": sorted(access.roles),
        "scoped": not access.spend.everything,
        "sso_only": settings.SSO_ONLY,
    }

"""What every page's navigation needs: which sections this user's roles may open."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.http import HttpRequest

from governance import permissions


def navigation(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    # Pages are for people; a DRF page rendered for an API token's principal gets no nav.
    if not isinstance(user, AbstractBaseUser) or not user.is_authenticated:
        return {}
    roles = permissions.roles_for(user)
    return {
        "nav": {
            "spend": permissions.can_view_usage(roles),
            "keys": permissions.can_view_virtual_keys(roles),
            "budgets": permissions.can_view_organization(roles),
            "alerts": permissions.can_view_alerts(roles),
            "nodes": permissions.can_view_gateway_nodes(roles),
            "prices": permissions.can_view_usage(roles),
            "audit": permissions.can_view_audit(roles),
            "manage": permissions.can_manage_governance(roles),
        },
        "roles": sorted(roles),
    }

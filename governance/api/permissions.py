"""DRF permission classes: thin adapters over ``governance.permissions``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request

from governance.models import GatewayNode
from governance.permissions import Access, access_for


class RoleRule(BasePermission):
    """Checks the view's ``read_rule`` for safe methods and ``write_rule`` otherwise."""

    def has_permission(self, request: Request, view: Any) -> bool:
        if not request.user or not request.user.is_authenticated:
            return False
        access = request_access(request)
        rule: Callable[[Access], bool] = view.read_rule if request.method in SAFE_METHODS else view.write_rule
        return rule(access)


def request_access(request: Request) -> Access:
    """The caller's access (its token's, else its user's), worked out once per request."""
    return access_for(request.user, request.auth)


class IsGatewayNode(BasePermission):
    """Only a gateway node's token (``GatewayNodeAuthentication``)."""

    def has_permission(self, request: Request, view: Any) -> bool:
        return isinstance(request.auth, GatewayNode)

"""Every role rule in one place, used by DRF permission classes and page views alike.

Roles: ``admin`` changes everything; ``finance`` reads spend, customers, teams and
budgets but not keys or tokens; ``viewer`` reads governance objects.
"""

from __future__ import annotations

from typing import Any

from governance.models import ApiToken, Role

Roles = frozenset[str]


def roles_for(user: Any, auth: Any = None) -> Roles:
    """The roles a request acts with: an API token's role (bounded by its owner's current
    roles, so demoting a user demotes their tokens), else the user's grants."""
    if isinstance(auth, ApiToken):
        if auth.user_id is None:
            return frozenset({auth.role})
        return frozenset({auth.role}) & roles_of_user(auth.user)
    if user is None or not user.is_authenticated:
        return frozenset()
    return roles_of_user(user)


def roles_of_user(user: Any) -> Roles:
    """A user's granted roles (superusers are admins), cached on the user object."""
    if not hasattr(user, "_bursar_roles"):
        granted = set(user.role_grants.values_list("role", flat=True))
        if user.is_superuser:
            granted.add(Role.ADMIN)
        user._bursar_roles = frozenset(granted)
    roles: Roles = user._bursar_roles
    return roles


def can_view_organization(roles: Roles) -> bool:
    """Customers, teams and budgets."""
    return bool(roles & {Role.ADMIN, Role.FINANCE, Role.VIEWER})


def can_view_alerts(roles: Roles) -> bool:
    """Budget alerts and their deliveries."""
    return bool(roles & {Role.ADMIN, Role.FINANCE, Role.VIEWER})


def can_manage_alert_channels(roles: Roles) -> bool:
    """Channels name webhook URLs and addresses: admins only, to read or change."""
    return Role.ADMIN in roles


def can_view_virtual_keys(roles: Roles) -> bool:
    return bool(roles & {Role.ADMIN, Role.VIEWER})


def can_view_gateway_nodes(roles: Roles) -> bool:
    return bool(roles & {Role.ADMIN, Role.VIEWER})


def can_view_usage(roles: Roles) -> bool:
    """Spend and usage figures."""
    return bool(roles & {Role.ADMIN, Role.FINANCE, Role.VIEWER})


def can_reprice(roles: Roles) -> bool:
    """Change prices and re-price stored events."""
    return Role.ADMIN in roles


def can_view_metrics(roles: Roles) -> bool:
    return Role.ADMIN in roles


def can_manage_governance(roles: Roles) -> bool:
    """Create, change and delete customers, teams, keys and budgets."""
    return Role.ADMIN in roles


def can_view_audit(roles: Roles) -> bool:
    return Role.ADMIN in roles


def can_manage_api_tokens(roles: Roles) -> bool:
    return Role.ADMIN in roles


def can_use_dashboard(roles: Roles) -> bool:
    return bool(roles)

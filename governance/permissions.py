"""Every permission decision in one place, used by DRF permission classes, page views,
CSV exports and charts alike.

Roles:

- ``admin`` changes everything;
- ``finance`` reads all spend, customers, teams, budgets and alerts, exports them, and
  reads statements; no keys, gateway nodes, users or tokens;
- ``team_lead`` is scoped to the teams it leads: their spend, their budgets and alerts,
  and their keys, which it may also issue, rotate and revoke;
- ``viewer`` reads spend and governance objects, optionally scoped to customers or teams.

A user holds at most one grant per role, and any number of roles. A request acts with an
``Access``: the roles, and what each part of the data it may see (``Visibility``). An API
token carries one role and scope the same way, never more than its owner now holds.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Q

from governance.models import ApiToken, BudgetScope, Role, Team, VirtualKey


@dataclass(frozen=True)
class Grant:
    """One role and its scope. ``scoped`` is stored with the grant: a scoped grant whose
    customers and teams have all been deleted sees nothing, never the whole organisation."""

    role: str
    customer_ids: frozenset[int] = frozenset()
    team_ids: frozenset[int] = frozenset()
    scoped: bool = False

    @classmethod
    def of(cls, role: str, customer_ids: Iterable[int] = (), team_ids: Iterable[int] = ()) -> Grant:
        """A new grant: scoped exactly when it names customers or teams."""
        customers, teams = frozenset(customer_ids), frozenset(team_ids)
        return cls(role, customers, teams, scoped=bool(customers or teams))


@dataclass(frozen=True)
class Visibility:
    """Which customers and teams a part of the data is limited to.

    Two readings, because a team can move between customers and an event names its
    customer and team separately:

    - figures (rollups, events): rows of a listed customer, or of a listed team;
    - objects (teams, keys, budgets): also every team the listed customers have now
      (``customer_team_ids``), so a customer's viewer opens its teams' pages, which show
      that team's spend for that customer.
    """

    everything: bool = False
    customer_ids: frozenset[int] = frozenset()
    team_ids: frozenset[int] = frozenset()
    customer_team_ids: frozenset[int] = frozenset()

    @property
    def nothing(self) -> bool:
        return not self.everything and not self.customer_ids and not self.team_ids

    @property
    def object_team_ids(self) -> frozenset[int]:
        return self.team_ids | self.customer_team_ids

    def union(self, other: Visibility) -> Visibility:
        if self.everything or other.everything:
            return EVERYTHING
        return Visibility(
            False,
            self.customer_ids | other.customer_ids,
            self.team_ids | other.team_ids,
            self.customer_team_ids | other.customer_team_ids,
        )

    def q(self, *, customer: str | None = "customer_id", team: str | None = "team_id") -> Q:
        """Objects whose ``customer`` or ``team`` is in scope (all if unlimited)."""
        return self._q(customer, team, self.object_team_ids)

    def usage_q(self) -> Q:
        """Usage rows and events (``customer_id``, ``team_id``) in scope."""
        return self._q("customer_id", "team_id", self.team_ids)

    def _q(self, customer: str | None, team: str | None, team_ids: frozenset[int]) -> Q:
        if self.everything:
            return Q()
        condition = Q(pk__in=[])
        if customer is not None and self.customer_ids:
            condition |= Q(**{f"{customer}__in": sorted(self.customer_ids)})
        if team is not None and team_ids:
            condition |= Q(**{f"{team}__in": sorted(team_ids)})
        return condition

    def covers(self, *, customer_id: int | None = None, team_id: int | None = None) -> bool:
        """Whether an object owned by this customer or team is in scope."""
        return (
            self.everything
            or (customer_id is not None and customer_id in self.customer_ids)
            or (team_id is not None and team_id in self.object_team_ids)
        )


EVERYTHING = Visibility(everything=True)
NOTHING = Visibility()


@dataclass(frozen=True)
class Access:
    """What one request may see and do.

    ``spend``: figures, customers, teams, budgets and alerts; ``keys``: virtual keys it may
    read; ``manages_keys``: where it may issue, rotate and revoke keys."""

    roles: frozenset[str] = frozenset()
    spend: Visibility = NOTHING
    keys: Visibility = NOTHING
    manages_keys: Visibility = NOTHING
    grants: tuple[Grant, ...] = field(default=(), compare=False)

    @property
    def is_admin(self) -> bool:
        return Role.ADMIN in self.roles


NO_ACCESS = Access()


def _teams_by_customer(customer_ids: Iterable[int]) -> dict[int, frozenset[int]]:
    ids = sorted(set(customer_ids))
    found: dict[int, set[int]] = {pk: set() for pk in ids}
    if ids:
        for team_id, customer_id in Team.objects.filter(customer_id__in=ids).values_list("pk", "customer_id"):
            found[customer_id].add(team_id)
    return {pk: frozenset(teams) for pk, teams in found.items()}


def access_from_grants(grants: Iterable[Grant]) -> Access:
    """Combine grants: each role adds what it may see; an unscoped grant sees everything."""
    grants = tuple(grants)
    spend, keys, manages = NOTHING, NOTHING, NOTHING
    teams_by_customer = _teams_by_customer(c for g in grants for c in g.customer_ids)
    for grant in grants:
        if grant.role == Role.TEAM_LEAD and not grant.scoped:
            continue  # refused when granted; a team lead without teams leads nothing
        seen = EVERYTHING
        if grant.scoped:  # even if every customer and team it named is gone: then nothing
            derived = frozenset().union(*(teams_by_customer[c] for c in grant.customer_ids))
            seen = Visibility(False, grant.customer_ids, grant.team_ids, derived)
        if grant.role == Role.ADMIN:
            spend, keys, manages = EVERYTHING, EVERYTHING, EVERYTHING
        elif grant.role == Role.FINANCE:
            spend = EVERYTHING
        elif grant.role == Role.TEAM_LEAD:
            spend, keys, manages = spend.union(seen), keys.union(seen), manages.union(seen)
        elif grant.role == Role.VIEWER:
            spend, keys = spend.union(seen), keys.union(seen)
    return Access(frozenset(g.role for g in grants), spend, keys, manages, grants)


def grants_of_user(user: Any, *, cached: bool = True) -> tuple[Grant, ...]:
    """A user's grants (superusers are admins), cached on the user object (a request's)."""
    if not cached or not hasattr(user, "_bursar_grants"):
        found = [
            Grant(
                row.role,
                frozenset(c.pk for c in row.customers.all()),
                frozenset(t.pk for t in row.teams.all()),
                scoped=row.scoped,
            )
            for row in user.role_grants.prefetch_related("customers", "teams")
        ]
        if user.is_superuser and not any(g.role == Role.ADMIN for g in found):
            found.append(Grant(Role.ADMIN))
        user._bursar_grants = tuple(found)
    grants: tuple[Grant, ...] = user._bursar_grants
    return grants


def token_grant(token: ApiToken, *, own: Grant | None = None) -> Grant | None:
    """The grant a token acts with: its own role and scope (``own`` overrides what is
    stored, for a token not yet saved), bounded by what its owner holds now (demoting or
    re-scoping a user does the same to their tokens)."""
    if own is None:
        own = Grant(
            token.role,
            frozenset(token.customers.values_list("pk", flat=True)),
            frozenset(token.teams.values_list("pk", flat=True)),
            scoped=token.scoped,
        )
    if token.user_id is None:
        return own
    owner = next((g for g in grants_of_user(token.user) if g.role == token.role), None)
    if owner is None:
        return None
    if not owner.scoped:
        return own
    if not own.scoped:
        return owner
    # Teams only as the owner holds them: a team of the owner's customer would also show
    # that team's events for other customers, which the owner does not see.
    customers = own.customer_ids & owner.customer_ids
    teams = own.team_ids & owner.team_ids
    return Grant(own.role, customers, teams, scoped=True) if customers or teams else None


def access_for(user: Any, auth: Any = None) -> Access:
    """The access of a request: its API token's, else its signed-in user's."""
    if isinstance(auth, ApiToken):
        cached: Access | None = getattr(auth, "_bursar_access", None)
        if cached is None:
            grant = token_grant(auth)
            cached = access_from_grants([grant] if grant else [])
            auth._bursar_access = cached  # type: ignore[attr-defined]
        return cached
    if user is None or not user.is_authenticated or not hasattr(user, "role_grants"):
        return NO_ACCESS
    if not hasattr(user, "_bursar_access"):
        user._bursar_access = access_from_grants(grants_of_user(user))
    access: Access = user._bursar_access
    return access


def check_scope(role: str, *, customer_ids: Iterable[int], team_ids: Iterable[int]) -> str | None:
    """Why a role cannot take this scope, or None when it can."""
    scoped = bool(list(customer_ids)) or bool(list(team_ids))
    if role in (Role.ADMIN, Role.FINANCE) and scoped:
        return f"the {role} role covers the whole organisation and takes no customers or teams"
    if role == Role.TEAM_LEAD:
        if list(customer_ids):
            return "a team lead is scoped to teams, not customers"
        if not list(team_ids):
            return "a team lead needs at least one team"
    return None


# --- What a request may do (capabilities) -------------------------------------------------


def can_use_dashboard(access: Access) -> bool:
    return bool(access.roles)


def can_view_usage(access: Access) -> bool:
    """Spend and usage figures (limited to ``access.spend``)."""
    return bool(access.roles)


def can_view_organization(access: Access) -> bool:
    """Customers, teams and budgets (limited to ``access.spend``)."""
    return bool(access.roles)


def can_view_alerts(access: Access) -> bool:
    """Budget alerts and their deliveries (limited to ``access.spend``)."""
    return bool(access.roles)


def can_view_virtual_keys(access: Access) -> bool:
    return not access.keys.nothing


def can_manage_virtual_keys(access: Access) -> bool:
    """Issue, rotate, revoke and change keys (limited to ``access.manages_keys``)."""
    return not access.manages_keys.nothing


def can_view_gateway_nodes(access: Access) -> bool:
    """Nodes serve every team: admins and organisation-wide viewers."""
    return access.keys.everything


def can_manage_governance(access: Access) -> bool:
    """Create, change and delete customers, teams, budgets and nodes; push config."""
    return access.is_admin


def can_manage_alert_channels(access: Access) -> bool:
    """Channels name webhook URLs and addresses: admins only, to read or change."""
    return access.is_admin


def can_reprice(access: Access) -> bool:
    """Change prices and re-price stored events."""
    return access.is_admin


def can_view_metrics(access: Access) -> bool:
    return access.is_admin


def can_view_audit(access: Access) -> bool:
    return access.is_admin


def can_manage_api_tokens(access: Access) -> bool:
    return access.is_admin


def can_manage_users(access: Access) -> bool:
    """Users, invitations and role grants."""
    return access.is_admin


# --- What a request may see (scopes) ------------------------------------------------------


def budget_q(visibility: Visibility) -> Q:
    """Budgets whose scope is visible; an organisation budget only to unlimited access."""
    if visibility.everything:
        return Q()
    teams = sorted(visibility.object_team_ids)
    return (
        Q(scope_type=BudgetScope.CUSTOMER, customer_id__in=sorted(visibility.customer_ids))
        | Q(scope_type=BudgetScope.TEAM, team_id__in=teams)
        | Q(scope_type=BudgetScope.VIRTUAL_KEY, virtual_key__team_id__in=teams)
        | Q(scope_type=BudgetScope.VIRTUAL_KEY, virtual_key__customer_id__in=sorted(visibility.customer_ids))
    )


def can_manage_key(access: Access, key: VirtualKey) -> bool:
    return access.manages_keys.covers(customer_id=key.customer_id, team_id=key.team_id)


def key_owner_refusal(access: Access, *, team: Team | None, customer_id: int | None) -> str | None:
    """Why this access may not give a key this owner (None when it may): admins give any;
    a team lead only a team it leads, with no customer or that team's own."""
    if access.manages_keys.everything:
        return None
    if team is None or team.pk not in access.manages_keys.object_team_ids:
        return "you can issue and move keys only into teams you lead"
    if customer_id is not None and customer_id != team.customer_id:
        return "a key of your team can belong only to the team's own customer"
    return None

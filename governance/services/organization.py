"""Writes for customers and teams."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction

from bursar.errors import Conflict
from governance.actors import Actor
from governance.models import Customer, Team, VirtualKeyStatus
from governance.services._changes import lock_for_update, save_changes
from governance.services.audit import record_audit, snapshot

CUSTOMER_FIELDS = ("external_id", "name", "currency", "markup_percent")
TEAM_FIELDS = ("slug", "name", "customer")


@transaction.atomic
def create_customer(
    *, actor: Actor, external_id: str, name: str, currency: str = "USD", markup_percent: Decimal = Decimal("0")
) -> Customer:
    """Create a customer.

    Side effects: one Customer row, one AuditEntry.
    """
    customer = Customer(external_id=external_id, name=name, currency=currency, markup_percent=markup_percent)
    customer.full_clean(validate_unique=False)
    try:
        with transaction.atomic():
            customer.save()
    except IntegrityError:
        raise Conflict(f"a customer with external_id {external_id!r} already exists", field="external_id") from None
    record_audit(
        actor=actor, action="customer.create", instance=customer, before=None, after=snapshot(customer, CUSTOMER_FIELDS)
    )
    return customer


@transaction.atomic
def update_customer(*, actor: Actor, customer: Customer, changes: dict[str, Any]) -> Customer:
    """Change a customer's fields.

    Side effects: updates the Customer row; one AuditEntry when something changed.
    """
    lock_for_update(customer)
    try:
        with transaction.atomic():
            save_changes(
                actor=actor,
                action="customer.update",
                instance=customer,
                changes=changes,
                audited_fields=CUSTOMER_FIELDS,
            )
    except IntegrityError:
        raise Conflict("a customer with this external_id already exists", field="external_id") from None
    return customer


@transaction.atomic
def delete_customer(*, actor: Actor, customer: Customer) -> None:
    """Delete a customer that no team, key or budget refers to (else ProtectedError → 409).

    Side effects: deletes the Customer row; one AuditEntry.
    """
    before = snapshot(customer, CUSTOMER_FIELDS)
    record_audit(actor=actor, action="customer.delete", instance=customer, before=before, after=None)
    customer.delete()


@transaction.atomic
def create_team(*, actor: Actor, slug: str, name: str, customer: Customer | None = None) -> Team:
    """Create a team, optionally working for one customer.

    Side effects: one Team row, one AuditEntry.
    """
    team = Team(slug=slug, name=name, customer=customer)
    team.full_clean(validate_unique=False)
    try:
        with transaction.atomic():
            team.save()
    except IntegrityError:
        raise Conflict(f"a team with slug {slug!r} already exists", field="slug") from None
    record_audit(actor=actor, action="team.create", instance=team, before=None, after=snapshot(team, TEAM_FIELDS))
    return team


@transaction.atomic
def update_team(*, actor: Actor, team: Team, changes: dict[str, Any]) -> Team:
    """Change a team's fields.

    Side effects: updates the Team row; one AuditEntry when something changed.
    """
    lock_for_update(team)
    live_keys = team.virtual_keys.exclude(status=VirtualKeyStatus.REVOKED)
    if "customer" in changes and changes["customer"] != team.customer and live_keys.exists():
        # Keys carry the customer they were issued for; moving the team would leave
        # them billed to the old one. Moving or revoking the keys first is explicit.
        raise Conflict(
            "this team has unrevoked virtual keys issued for its current customer; "
            "move them to another team or revoke them first",
            field="customer",
        )
    try:
        with transaction.atomic():
            save_changes(actor=actor, action="team.update", instance=team, changes=changes, audited_fields=TEAM_FIELDS)
    except IntegrityError:
        raise Conflict("a team with this slug already exists", field="slug") from None
    return team


@transaction.atomic
def delete_team(*, actor: Actor, team: Team) -> None:
    """Delete a team that no key or budget refers to (else ProtectedError → 409).

    Side effects: deletes the Team row; one AuditEntry.
    """
    record_audit(actor=actor, action="team.delete", instance=team, before=snapshot(team, TEAM_FIELDS), after=None)
    team.delete()


def ensure_customers(*, actor: Actor, external_ids: set[str]) -> dict[str, int]:
    """Create the customers gateways named that do not exist yet (name = external id,
    for an admin to rename), and return every id. Safe against a concurrent worker
    creating the same one: each creation is its own savepoint.

    Side effects: one Customer row and one AuditEntry per customer created.
    """
    known = dict(Customer.objects.filter(external_id__in=external_ids).values_list("external_id", "pk"))
    for external_id in sorted(external_ids - known.keys()):
        try:
            with transaction.atomic():
                customer = Customer.objects.create(external_id=external_id, name=external_id)
                record_audit(
                    actor=actor,
                    action="customer.create",
                    instance=customer,
                    before=None,
                    after=snapshot(customer, CUSTOMER_FIELDS) | {"created_by": "first event naming it"},
                )
        except IntegrityError:
            customer = Customer.objects.get(external_id=external_id)
        known[external_id] = customer.pk
    return known

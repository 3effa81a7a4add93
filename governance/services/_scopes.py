"""Budgets and alert channels attach to a scope the same way: organization (none) or
one customer, team or virtual key, held as a real foreign key."""

from __future__ import annotations

from typing import Any

from bursar.errors import InvalidInput
from governance.models import BudgetScope, Customer, Team, VirtualKey

_SCOPE_MODELS: dict[str, type[Customer] | type[Team] | type[VirtualKey]] = {
    BudgetScope.CUSTOMER: Customer,
    BudgetScope.TEAM: Team,
    BudgetScope.VIRTUAL_KEY: VirtualKey,
}


def scope_kwargs(scope_type: str, scope_id: int | None) -> dict[str, Any]:
    if scope_type == BudgetScope.ORGANIZATION:
        if scope_id is not None:
            raise InvalidInput("must be empty for the organization scope", field="scope_id")
        return {}
    model = _SCOPE_MODELS.get(scope_type)
    if model is None:
        raise InvalidInput(f"{scope_type!r} is not a scope", field="scope_type")
    if scope_id is None:
        raise InvalidInput(f"required for the {scope_type} scope", field="scope_id")
    target = model.objects.filter(pk=scope_id).first()
    if target is None:
        raise InvalidInput(f"no {scope_type} with id {scope_id}", field="scope_id")
    return {scope_type: target}

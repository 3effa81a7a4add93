from collections.abc import Callable
from decimal import Decimal

import pytest
from django.db.models import Model, ProtectedError
from django.utils import timezone

from bursar.errors import Conflict, InvalidInput
from governance.models import Budget, Customer
from governance.services.budgets import update_budget
from governance.services.organization import delete_customer, update_customer
from tests.factories import ACTOR, make_budget, make_customer, make_key, make_team

pytestmark = pytest.mark.django_db


def test_duplicate_external_id_is_a_conflict_on_that_field():
    make_customer(external_id="acme")
    with pytest.raises(Conflict) as error:
        make_customer(external_id="acme")
    assert error.value.field == "external_id"
    assert Customer.objects.filter(external_id="acme").count() == 1


def test_renaming_a_customer_onto_another_external_id_is_a_conflict():
    make_customer(external_id="acme")
    other = make_customer(external_id="globex")
    with pytest.raises(Conflict):
        update_customer(actor=ACTOR, customer=other, changes={"external_id": "acme"})
    other.refresh_from_db()
    assert other.external_id == "globex"


def test_customer_still_used_by_a_team_cannot_be_deleted():
    customer = make_customer()
    make_team(customer=customer)
    with pytest.raises(ProtectedError):
        delete_customer(actor=ACTOR, customer=customer)
    assert Customer.objects.filter(pk=customer.pk).exists()


@pytest.mark.parametrize("scope_type", ["customer", "team", "virtual_key"])
def test_budget_on_a_scope_points_at_that_object(scope_type):
    makers: dict[str, Callable[[], Model]] = {
        "customer": make_customer,
        "team": make_team,
        "virtual_key": lambda: make_key().key,
    }
    target = makers[scope_type]()

    budget = make_budget(scope_type=scope_type, scope_id=target.pk)

    assert budget.scope_id == target.pk
    assert getattr(budget, scope_type) == target


def test_budget_on_a_missing_scope_is_refused():
    with pytest.raises(InvalidInput) as error:
        make_budget(scope_type="team", scope_id=999_999)
    assert error.value.field == "scope_id"
    assert not Budget.objects.exists()


def test_organization_budget_takes_no_scope_id():
    with pytest.raises(InvalidInput) as error:
        make_budget(scope_type="organization", scope_id=1)
    assert error.value.field == "scope_id"


@pytest.mark.parametrize("zone", ["Mars/Base", "../../etc/passwd", ""])
def test_budget_timezone_must_be_an_iana_name(zone):
    with pytest.raises(InvalidInput) as error:
        make_budget(timezone=zone)
    assert error.value.field == "timezone"


def test_thresholds_are_sorted_and_unique():
    assert make_budget(soft_thresholds=[90, 50, 80, 50]).soft_thresholds == [50, 80, 90]


@pytest.mark.parametrize("thresholds", [[0], [101], [50.5], [True]])
def test_thresholds_outside_1_to_100_are_refused(thresholds):
    with pytest.raises(InvalidInput) as error:
        make_budget(soft_thresholds=thresholds)
    assert error.value.field == "soft_thresholds"


def test_budget_amount_keeps_its_exact_decimal():
    budget = make_budget(amount=Decimal("1234.5678"))
    budget.refresh_from_db()
    assert budget.amount == Decimal("1234.5678")


def test_lowering_a_budget_amount_to_zero_is_refused():
    budget = make_budget(amount=Decimal("10"))
    with pytest.raises(InvalidInput):
        update_budget(actor=ACTOR, budget=budget, changes={"amount": Decimal("0")}, now=timezone.now())
    budget.refresh_from_db()
    assert budget.amount == Decimal("10")

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from bursar.errors import Conflict, InvalidInput
from governance.models import AuditEntry, VirtualKey
from governance.selectors import get_virtual_key_for_secret
from governance.services.virtual_keys import (
    expire_virtual_keys,
    revoke_virtual_key,
    rotate_virtual_key,
    update_virtual_key,
)
from tests.factories import ACTOR, make_customer, make_key, make_team

pytestmark = pytest.mark.django_db


def _all_stored_text() -> str:
    """Every value of every governance table, as text, to prove a secret is absent."""
    with connection.cursor() as cursor:
        chunks: list[str] = []
        for table in ("governance_virtualkey", "governance_auditentry"):
            cursor.execute(f"SELECT * FROM {table}")  # noqa: S608 - fixed table names
            chunks.extend(str(row) for row in cursor.fetchall())
    return "\n".join(chunks)


def test_issued_key_stores_only_the_hash_of_its_secret():
    issued = make_key()

    assert issued.secret.startswith("vk_") and len(issued.secret) > 40
    assert issued.secret not in _all_stored_text()
    assert get_virtual_key_for_secret(secret=issued.secret, now=timezone.now()) == issued.key
    assert issued.key.secret_prefix == issued.secret[:11]


def test_key_of_a_customers_team_belongs_to_that_customer():
    customer = make_customer()
    team = make_team(customer=customer)

    key = make_key(team=team).key

    assert key.customer == customer


def test_key_cannot_name_a_customer_other_than_its_teams():
    team = make_team(customer=make_customer())
    other = make_customer()

    with pytest.raises(InvalidInput) as error:
        make_key(team=team, customer=other)

    assert error.value.field == "customer"
    assert not VirtualKey.objects.exists()


@pytest.mark.parametrize("pattern", ["", " ", "openai/gpt 4", "*/gpt", "open*ai/x*", "a/**"])
def test_malformed_model_patterns_are_refused(pattern):
    with pytest.raises(InvalidInput) as error:
        make_key(allowed_models=[pattern])
    assert error.value.field == "allowed_models"


def test_model_patterns_are_deduplicated_in_order():
    key = make_key(allowed_models=["openai/gpt-4o-mini", "anthropic/*", "openai/gpt-4o-mini", "*"]).key
    assert key.allowed_models == ["openai/gpt-4o-mini", "anthropic/*", "*"]


def test_rotated_key_accepts_the_old_secret_only_during_the_grace_window():
    issued = make_key()
    now = timezone.now()

    rotated = rotate_virtual_key(actor=ACTOR, key=issued.key, grace=timedelta(minutes=10), now=now)

    assert rotated.secret != issued.secret
    assert get_virtual_key_for_secret(secret=rotated.secret, now=now) == issued.key
    assert get_virtual_key_for_secret(secret=issued.secret, now=now + timedelta(minutes=9)) == issued.key
    assert get_virtual_key_for_secret(secret=issued.secret, now=now + timedelta(minutes=11)) is None
    assert rotated.secret not in _all_stored_text()


def test_rotation_without_grace_retires_the_old_secret_at_once():
    issued = make_key()
    now = timezone.now()

    rotate_virtual_key(actor=ACTOR, key=issued.key, grace=timedelta(0), now=now)

    assert get_virtual_key_for_secret(secret=issued.secret, now=now) is None


def test_grace_longer_than_thirty_days_is_refused():
    issued = make_key()
    with pytest.raises(InvalidInput) as error:
        rotate_virtual_key(actor=ACTOR, key=issued.key, grace=timedelta(days=31), now=timezone.now())
    assert error.value.field == "grace_seconds"


def test_revoked_key_cannot_be_rotated_or_changed_and_revoking_twice_audits_once():
    key = make_key().key
    now = timezone.now()

    revoke_virtual_key(actor=ACTOR, key=key, now=now)
    revoke_virtual_key(actor=ACTOR, key=key, now=now)

    assert AuditEntry.objects.filter(action="virtual_key.revoke", object_id=str(key.pk)).count() == 1
    with pytest.raises(Conflict):
        rotate_virtual_key(actor=ACTOR, key=key, grace=timedelta(0), now=now)
    with pytest.raises(Conflict):
        update_virtual_key(actor=ACTOR, key=key, changes={"name": "again"}, now=now)


def test_expiry_sweep_marks_only_keys_past_their_expiry():
    now = timezone.now()
    soon = make_key(expires_at=now + timedelta(minutes=5)).key
    later = make_key(expires_at=now + timedelta(days=5)).key
    forever = make_key().key

    expired = expire_virtual_keys(now=now + timedelta(minutes=6))

    assert expired == 1
    statuses = dict(VirtualKey.objects.values_list("pk", "status"))
    assert statuses == {soon.pk: "expired", later.pk: "active", forever.pk: "active"}
    assert expire_virtual_keys(now=now + timedelta(minutes=7)) == 0


def test_key_past_its_expiry_reads_as_expired_before_the_sweep():
    now = timezone.now()
    key = make_key(expires_at=now + timedelta(minutes=1)).key
    assert key.effective_status(now) == "active"
    assert key.effective_status(now + timedelta(minutes=2)) == "expired"


def test_extending_an_expired_key_reactivates_it():
    now = timezone.now()
    key = make_key(expires_at=now + timedelta(minutes=1)).key
    expire_virtual_keys(now=now + timedelta(minutes=2))
    key.refresh_from_db()

    update_virtual_key(actor=ACTOR, key=key, changes={"expires_at": now + timedelta(days=30)}, now=now)

    key.refresh_from_db()
    assert key.status == "active"


def test_expiry_in_the_past_is_refused():
    with pytest.raises(InvalidInput) as error:
        make_key(expires_at=timezone.now() - timedelta(seconds=1))
    assert error.value.field == "expires_at"

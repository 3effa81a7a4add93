import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection, transaction
from django.test import Client

from governance.actors import Actor
from governance.audit_chain import verify_audit_chain
from governance.models import AuditEntry, Customer
from governance.services.organization import update_customer
from tests.factories import ACTOR, make_budget, make_customer, make_key, make_team, make_token, make_user

pytestmark = pytest.mark.django_db


def test_every_change_writes_one_entry_with_before_and_after():
    customer = make_customer(name="Old name")

    update_customer(actor=ACTOR, customer=customer, changes={"name": "New name"})

    entry = AuditEntry.objects.filter(action="customer.update").get()
    assert entry.before is not None and entry.after is not None
    assert entry.before["name"] == "Old name"
    assert entry.after["name"] == "New name"
    assert entry.actor == "system:tests"
    assert entry.object_id == str(customer.pk)


def test_a_change_that_changes_nothing_writes_no_entry():
    customer = make_customer(name="Same")
    update_customer(actor=ACTOR, customer=customer, changes={"name": "Same"})
    assert not AuditEntry.objects.filter(action="customer.update").exists()


def test_entry_is_rolled_back_with_the_change_it_records():
    with pytest.raises(RuntimeError), transaction.atomic():
        make_customer(external_id="rolled-back")
        raise RuntimeError("the surrounding work failed")

    assert not Customer.objects.filter(external_id="rolled-back").exists()
    assert not AuditEntry.objects.exists()


def test_secrets_never_reach_the_audit_log():
    key = make_key()
    token = make_token("admin")
    logged = "".join(str(entry.before) + str(entry.after) for entry in AuditEntry.objects.all())
    assert key.secret not in logged
    assert token.secret not in logged
    assert key.key.secret_sha256 not in logged


class database_superuser_bypassing_the_trigger:
    """What only a database superuser can do: run with triggers off (the chain is what still
    catches it)."""

    def __enter__(self) -> None:
        with connection.cursor() as cursor:
            cursor.execute("SET session_replication_role = replica")

    def __exit__(self, *exc: object) -> None:
        with connection.cursor() as cursor:
            cursor.execute("SET session_replication_role = origin")


def test_the_database_refuses_to_change_or_delete_an_entry():
    make_customer()
    entry = AuditEntry.objects.get()

    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEntry.objects.filter(pk=entry.pk).update(after={"name": "forged"})
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        entry.delete()
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEntry.objects.all().delete()

    assert AuditEntry.objects.get().after == entry.after
    assert verify_audit_chain().first_broken_id is None


def test_deleting_the_acting_user_keeps_the_entries_and_the_chain():
    user = make_user("viewer")
    update_customer(
        actor=Actor(label="user:x", via="ui", user_id=user.pk), customer=make_customer(), changes={"name": "N"}
    )

    user.delete()  # the entry's actor link is cleared; what the hash covers is untouched

    assert AuditEntry.objects.filter(action="customer.update").get().actor == "user:x"
    assert verify_audit_chain().first_broken_id is None


def test_chain_verifies_and_reports_the_first_tampered_entry():
    make_customer()
    team = make_team()
    make_budget(scope_type="team", scope_id=team.pk)
    assert verify_audit_chain().first_broken_id is None
    assert verify_audit_chain().checked == 3

    second = AuditEntry.objects.order_by("id")[1]
    with database_superuser_bypassing_the_trigger():
        AuditEntry.objects.filter(pk=second.pk).update(after={"slug": "forged"})

    result = verify_audit_chain()
    assert result.first_broken_id == second.pk
    assert result.reason == "entry content changed"
    with pytest.raises(CommandError, match=f"broken at entry {second.pk}"):
        call_command("verify_audit")


def test_deleting_an_entry_breaks_the_chain_at_the_next_one():
    for _ in range(3):
        make_customer()
    _first, second, third = AuditEntry.objects.order_by("id")
    with database_superuser_bypassing_the_trigger():
        second.delete()

    assert verify_audit_chain().first_broken_id == third.pk


def test_the_audit_api_and_page_filter_and_export_csv(admin_api):
    created = admin_api.post("/api/v1/customers/", {"external_id": "csv_co", "name": "CSV Co"}, format="json").json()
    make_customer(external_id="by_command")  # via "system" (the test actor)

    csv_response = admin_api.get("/api/v1/audit/", {"format": "csv", "via": "api", "object_id": created["id"]})
    lines = csv_response.content.decode().splitlines()
    assert csv_response["Content-Type"].startswith("text/csv")
    assert lines[0].startswith("id,at,actor,via,ip,action,object")
    assert len(lines) == 2 and "customer.create" in lines[1] and "csv_co" in lines[1]

    client = Client()
    client.force_login(make_user("admin"))
    page = client.get("/audit/", {"via": "api", "object_id": created["id"]}).content.decode()
    assert "CSV Co" in page and "by_command" not in page
    exported = client.get("/audit/", {"via": "system", "format": "csv"}).content.decode()
    assert "by_command" in exported and "csv_co" not in exported


def test_the_ip_recorded_is_the_clients_behind_a_trusted_proxy(admin_api, settings):
    settings.ALLAUTH_TRUSTED_PROXY_COUNT = 1
    admin_api.post(
        "/api/v1/customers/",
        {"external_id": "proxied", "name": "Proxied"},
        format="json",
        HTTP_X_FORWARDED_FOR="198.51.100.23",
        REMOTE_ADDR="10.0.0.2",
    )
    assert AuditEntry.objects.get(action="customer.create").ip == "198.51.100.23"

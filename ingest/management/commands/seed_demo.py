from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction
from django.utils import timezone

from billing.models import UsageEvent
from governance.actors import Actor
from governance.models import Budget, Customer, Role, Team, VirtualKey
from governance.selectors import budget_statuses
from governance.services.alerts import create_alert_channel
from governance.services.budgets import create_budget, update_budget
from governance.services.nodes import RegisteredNode, register_gateway_node
from governance.services.organization import create_customer, create_team
from governance.services.users import create_user
from governance.services.virtual_keys import issue_virtual_key
from ingest.demo import send_demo_traffic

CUSTOMERS = [
    ("acme_corp", "Acme Corp", "USD", "15"),
    ("globex", "Globex", "USD", "10"),
    ("initech", "Initech", "EUR", "0"),
    ("umbrella", "Umbrella Health", "USD", "25"),
    ("hooli", "Hooli", "GBP", "5"),
]
TEAMS = [
    ("acme-support", "Acme support bot", "acme_corp"),
    ("acme-search", "Acme search", "acme_corp"),
    ("globex-catalog", "Globex catalog enrichment", "globex"),
    ("initech-reports", "Initech reporting", "initech"),
    ("umbrella-triage", "Umbrella triage", "umbrella"),
    ("hooli-assist", "Hooli assistant", "hooli"),
    ("research", "Internal research", None),
    ("platform", "Platform engineering", None),
]
KEYS = [
    ("acme support prod", "acme-support", ["openai/gpt-4o-mini", "anthropic/*"], 600),
    ("acme support staging", "acme-support", ["openai/gpt-4o-mini"], 60),
    ("acme search reranker", "acme-search", ["cohere/*", "openai/text-embedding-3-small"], 1200),
    ("globex catalog batch", "globex-catalog", ["openai/*"], 300),
    ("initech monthly reports", "initech-reports", ["anthropic/claude-sonnet-4*"], 30),
    ("umbrella triage", "umbrella-triage", ["google/gemini-2.5-flash", "openai/gpt-4o-mini"], 120),
    ("hooli assistant", "hooli-assist", [], 900),
    ("research notebooks", "research", [], None),
    ("platform evals", "platform", ["openai/*", "anthropic/*", "google/*"], 240),
]
# (username, role, scope): the scoped ones show what a team lead or a customer's viewer sees.
USERS = [
    ("admin", Role.ADMIN, {}),
    ("finance", Role.FINANCE, {}),
    ("viewer", Role.VIEWER, {}),
    ("lead", Role.TEAM_LEAD, {"teams": ["acme-support", "acme-search"]}),
    ("acme-viewer", Role.VIEWER, {"customers": ["acme_corp"]}),
]
DEMO_PASSWORD = "bursar-demo"  # noqa: S105  (local demo accounts, printed on purpose)


class Command(BaseCommand):
    help = (
        "Load demo customers, teams, keys, budgets, users and a gateway node, then send a few weeks "
        "of traffic through the ingest endpoints (skipped if already loaded)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--quiet", action="store_true")
        parser.add_argument("--days", type=int, default=21, help="days of traffic (default 21)")
        parser.add_argument("--per-day", type=int, default=1500, help="requests on a weekday (default 1500)")

    def handle(self, *args: Any, quiet: bool = False, days: int = 21, per_day: int = 1500, **options: Any) -> None:
        if Customer.objects.filter(external_id=CUSTOMERS[0][0]).exists():
            if not quiet:
                self.stdout.write("demo data already loaded")
            return
        node = self._governance(quiet=quiet)
        keys = list(VirtualKey.objects.order_by("pk").values_list("public_id", flat=True))
        accepted = send_demo_traffic(ingest_token=node.ingest_token, keys=keys, days=days, per_day=per_day)
        if not quiet:
            self.stdout.write(
                f"demo traffic sent through the ingest endpoints: {accepted} events over {days} days; "
                f"{UsageEvent.objects.count()} stored"
            )
        self._budgets_near_their_caps()

    @transaction.atomic
    def _budgets_near_their_caps(self) -> None:
        """Two budgets set against the spend the traffic made, through the real services:
        one key over its hard cap (blocked, with its alerts) and one team at 80%."""
        actor, now = Actor.command("seed_demo"), timezone.now()
        shown = [
            ("virtual_key", VirtualKey.objects.get(name="acme support prod").pk, "monthly", [50, 80], Decimal("0.9")),
            ("team", Team.objects.get(slug="research").pk, "weekly", [75], Decimal("1.25")),
        ]
        for scope_type, scope_id, period, thresholds, share in shown:
            budget = create_budget(
                actor=actor,
                now=now,
                scope_type=scope_type,
                scope_id=scope_id,
                amount=Decimal("1000000"),
                period=period,
                soft_thresholds=thresholds,
            )
            spent = budget_statuses([budget], now=now)[budget.pk].spent  # what this period already cost
            amount = max((spent * share).quantize(Decimal("0.01")), Decimal("0.01"))
            update_budget(actor=actor, budget=budget, changes={"amount": amount}, now=now)

    @transaction.atomic
    def _governance(self, *, quiet: bool) -> RegisteredNode:
        actor = Actor.command("seed_demo")
        now = timezone.now()
        customers = {
            external_id: create_customer(
                actor=actor, external_id=external_id, name=name, currency=currency, markup_percent=Decimal(markup)
            )
            for external_id, name, currency, markup in CUSTOMERS
        }
        teams = {
            slug: create_team(actor=actor, slug=slug, name=name, customer=customers[owner] if owner else None)
            for slug, name, owner in TEAMS
        }
        for name, team_slug, allowed, rpm in KEYS:
            issue_virtual_key(
                actor=actor,
                name=name,
                now=now,
                team=teams[team_slug],
                allowed_models=allowed,
                requests_per_minute=rpm,
                expires_at=now + timedelta(days=180) if "staging" in name else None,
            )
        create_budget(
            actor=actor,
            now=now,
            scope_type="organization",
            scope_id=None,
            amount=Decimal("25000"),
            period="monthly",
            soft_thresholds=[50, 80, 90],
        )
        create_budget(
            actor=actor,
            now=now,
            scope_type="customer",
            scope_id=customers["acme_corp"].pk,
            amount=Decimal("4000"),
            period="monthly",
            timezone="America/New_York",
        )
        create_budget(
            actor=actor,
            now=now,
            scope_type="customer",
            scope_id=customers["globex"].pk,
            amount=Decimal("150"),
            period="daily",
            hard_cap=False,
        )
        create_budget(
            actor=actor,
            now=now,
            scope_type="customer",
            scope_id=customers["initech"].pk,
            amount=Decimal("2000"),
            currency="EUR" if "EUR" in settings.EXCHANGE_RATES else "USD",
            period="monthly",
            timezone="Europe/Paris",
        )
        create_budget(
            actor=actor,
            now=now,
            scope_type="team",
            scope_id=teams["research"].pk,
            amount=Decimal("1500"),
            period="weekly",
            soft_thresholds=[75],
        )
        create_budget(
            actor=actor,
            now=now,
            scope_type="team",
            scope_id=teams["umbrella-triage"].pk,
            amount=Decimal("9000"),
            period="quarterly",
        )

        create_alert_channel(actor=actor, kind="email", target="finance@example.com", name="finance (printed)")
        node = register_gateway_node(actor=actor, name="demo-gateway", kind="litellm")
        for username, role, scope in USERS:
            create_user(
                actor=actor,
                username=username,
                email=f"{username}@example.com",
                password=DEMO_PASSWORD,
                role=role,
                teams=[teams[slug] for slug in scope.get("teams", [])],
                customers=[customers[external_id] for external_id in scope.get("customers", [])],
            )
        if not quiet:
            self.stdout.write(
                f"demo data loaded: {len(customers)} customers, {len(teams)} teams, {len(KEYS)} keys, "
                f"{Budget.objects.count()} budgets; "
                f"sign in as {', '.join(name for name, _, _ in USERS)} with password {DEMO_PASSWORD!r}"
            )
        return node

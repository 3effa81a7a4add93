from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from bursar.errors import DomainError
from governance.actors import Actor
from governance.models import Customer, Role, Team
from governance.services.api_tokens import create_api_token


class Command(BaseCommand):
    help = "Create an API token and print it alone on stdout (it is shown this once)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--name", required=True, help="what the token is for, e.g. ci-export")
        parser.add_argument("--role", required=True, choices=Role.values)
        parser.add_argument("--user", help="username that owns the token (default: a service identity)")
        parser.add_argument(
            "--customer", action="append", default=[], metavar="EXTERNAL_ID", help="limit to this customer (repeatable)"
        )
        parser.add_argument(
            "--team", action="append", default=[], metavar="SLUG", help="limit to this team (repeatable)"
        )

    def handle(
        self, *args: Any, name: str, role: str, user: str | None, customer: list[str], team: list[str], **options: Any
    ) -> None:
        customers = list(Customer.objects.filter(external_id__in=customer))
        teams = list(Team.objects.filter(slug__in=team))
        missing = sorted(set(customer) - {c.external_id for c in customers}) + sorted(
            set(team) - {t.slug for t in teams}
        )
        if missing:
            raise CommandError(f"no customer or team named {missing[0]!r}")
        owner = None
        if user:
            owner = get_user_model().objects.filter(username=user).first()
            if owner is None:
                raise CommandError(f"no user named {user!r}")
        try:
            issued = create_api_token(
                actor=Actor.command("create_api_token"),
                name=name,
                role=role,
                user=owner,
                now=timezone.now(),
                customers=customers,
                teams=teams,
            )
        except DomainError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(issued.secret)

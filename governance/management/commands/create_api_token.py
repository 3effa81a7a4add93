from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from bursar.errors import DomainError
from governance.actors import Actor
from governance.models import Role
from governance.services.api_tokens import create_api_token


class Command(BaseCommand):
    help = "Create an API token and print it alone on stdout (it is shown this once)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--name", required=True, help="what the token is for, e.g. ci-export")
        parser.add_argument("--role", required=True, choices=Role.values)
        parser.add_argument("--user", help="username that owns the token (default: a service identity)")

    def handle(self, *args: Any, name: str, role: str, user: str | None, **options: Any) -> None:
        owner = None
        if user:
            owner = get_user_model().objects.filter(username=user).first()
            if owner is None:
                raise CommandError(f"no user named {user!r}")
        try:
            issued = create_api_token(
                actor=Actor.command("create_api_token"), name=name, role=role, user=owner, now=timezone.now()
            )
        except DomainError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(issued.secret)

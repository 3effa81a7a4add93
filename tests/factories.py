"""Test data built through the real services, so tests see what production writes."""

from __future__ import annotations

import itertools
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import User
from django.utils import timezone

from governance.actors import Actor
from governance.models import Budget, Customer, Team
from governance.services.api_tokens import IssuedApiToken, create_api_token
from governance.services.budgets import create_budget
from governance.services.organization import create_customer, create_team
from governance.services.users import create_user
from governance.services.virtual_keys import IssuedSecret, issue_virtual_key

ACTOR = Actor.system("tests")
_sequence = itertools.count(1)


def make_customer(**overrides: Any) -> Customer:
    n = next(_sequence)
    fields: dict[str, Any] = {"external_id": f"customer_{n}", "name": f"Customer {n}"} | overrides
    return create_customer(actor=ACTOR, **fields)


def make_team(**overrides: Any) -> Team:
    n = next(_sequence)
    fields: dict[str, Any] = {"slug": f"team-{n}", "name": f"Team {n}"} | overrides
    return create_team(actor=ACTOR, **fields)


def make_key(**overrides: Any) -> IssuedSecret:
    n = next(_sequence)
    fields: dict[str, Any] = {"name": f"key {n}", "now": timezone.now()} | overrides
    return issue_virtual_key(actor=ACTOR, **fields)


def make_budget(**overrides: Any) -> Budget:
    fields: dict[str, Any] = {
        "scope_type": "organization",
        "scope_id": None,
        "amount": Decimal("100"),
        "now": timezone.now(),
    } | overrides
    return create_budget(actor=ACTOR, **fields)


def make_token(role: str, **overrides: Any) -> IssuedApiToken:
    n = next(_sequence)
    fields: dict[str, Any] = {"name": f"{role} token {n}", "role": role} | overrides
    return create_api_token(actor=ACTOR, now=timezone.now(), **fields)


def make_user(role: str, **overrides: Any) -> User:
    n = next(_sequence)
    fields: dict[str, Any] = {
        "username": f"{role}{n}",
        "email": f"{role}{n}@example.com",
        "password": "correct horse battery staple",
        "role": role,
    } | overrides
    user = create_user(actor=ACTOR, **fields)
    assert isinstance(user, User)
    return user


def native_event(**overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "request_id": "req_1",
        "timestamp": "2026-05-27T14:52:40.123Z",
        "provider": "openai",
        "model": "gpt-4o-mini",
        "input_tokens": 1000,
        "output_tokens": 100,
        "latency_ms": 312,
        "status": 200,
    }
    event.update(overrides)
    return event

"""django-allauth hooks."""

from __future__ import annotations

from allauth.account.adapter import DefaultAccountAdapter
from django.http import HttpRequest


class InvitationOnlyAccountAdapter(DefaultAccountAdapter):
    """No open sign-up: accounts are created by an admin (invitations come with the
    sign-in issue) or by ``createsuperuser``."""

    def is_open_for_signup(self, request: HttpRequest) -> bool:
        return False

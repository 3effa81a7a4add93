"""Claims for the ID token and the userinfo endpoint."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from oauth2_provider.oauth2_validators import OAuth2Validator  # type: ignore[import-untyped]


def _name(request: Any) -> str:
    user = request.user
    return str(user.get_full_name() or user.username)


class ClaimsValidator(OAuth2Validator):
    """``email`` and ``email_verified`` (scope ``email``), ``name``, ``preferred_username``,
    ``given_name`` and ``family_name`` (scope ``profile``), on top of ``sub``.

    The request-agnostic form (callables, no ``request`` argument) also lists these claims
    in discovery's ``claims_supported``.
    """

    def get_additional_claims(self) -> dict[str, Callable[[Any], object]]:
        return {
            "email": lambda request: request.user.email,
            "email_verified": lambda request: True,
            "name": _name,
            "preferred_username": lambda request: request.user.username,
            "given_name": lambda request: request.user.first_name,
            "family_name": lambda request: request.user.last_name,
        }

"""``Authorization: Bearer bsr_…`` for automation; session auth covers the browser."""

from __future__ import annotations

from typing import Any, NoReturn

from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.request import Request

from governance.models import ApiToken, GatewayNode
from governance.selectors import get_gateway_node_for_token, get_usable_api_token
from governance.services.api_tokens import mark_api_token_used


class Principal:
    """``request.user`` for a caller that is not a person: authenticated, no Django perms."""

    pk = None
    id = None
    is_active = True
    is_staff = False
    is_superuser = False
    is_authenticated = True
    is_anonymous = False

    def __init__(self, username: str) -> None:
        self.username = username

    def get_username(self) -> str:
        return self.username

    def __str__(self) -> str:
        return self.username


class ServiceIdentity(Principal):
    """The user of a token that belongs to no person (a CI job, a script)."""

    def __init__(self, token: ApiToken) -> None:
        super().__init__(f"token:{token.name}")
        self.token = token


class ApiTokenAuthentication(BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[Any, ApiToken] | None:
        header = get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Authorization header must be 'Bearer <token>'")
        try:
            secret = header[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("invalid token") from None
        if not secret.startswith("bsr_"):
            # Node tokens (bsn_) are accepted by the ingest endpoints' own authentication.
            return None if secret.startswith("bsn_") else self._fail()
        now = timezone.now()
        token = get_usable_api_token(secret=secret, now=now)
        if token is None:
            self._fail()
        if token.user is not None and not token.user.is_active:
            raise exceptions.AuthenticationFailed("the user this token belongs to is deactivated")
        mark_api_token_used(token=token, now=now)
        return token.user or ServiceIdentity(token), token

    def _fail(self) -> NoReturn:
        raise exceptions.AuthenticationFailed("invalid, revoked or expired token")

    def authenticate_header(self, request: Request) -> str:
        return self.keyword


class GatewayNodePrincipal(Principal):
    """``request.user`` of a call made with a gateway node's ingest token."""

    def __init__(self, node: GatewayNode) -> None:
        super().__init__(f"node:{node.name}")
        self.node = node


class GatewayNodeAuthentication(BaseAuthentication):
    """``Authorization: Bearer bsn_…``: a gateway node sending events or reading config."""

    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[GatewayNodePrincipal, GatewayNode] | None:
        header = get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Authorization header must be 'Bearer <node token>'")
        try:
            secret = header[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("invalid node token") from None
        node = get_gateway_node_for_token(secret=secret)
        if node is None:
            raise exceptions.AuthenticationFailed(
                "invalid node token: use the bsn_ token shown when the node was created"
            )
        return GatewayNodePrincipal(node), node

    def authenticate_header(self, request: Request) -> str:
        return self.keyword


class ApiTokenAuthenticationScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    target_class = "governance.api.authentication.ApiTokenAuthentication"
    name = "ApiToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer", "bearerFormat": "bsr_…"}


class GatewayNodeAuthenticationScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    target_class = "governance.api.authentication.GatewayNodeAuthentication"
    name = "NodeToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer", "bearerFormat": "bsn_…"}

"""People and automation: users with their role grants, invitations and API tokens (admin
pages), and the public page where an invitation link is accepted.

Every change goes through ``governance.services.users`` and ``governance.services.api_tokens``,
so it is validated and audited exactly as through the API. Secrets (invitation links,
``bsr_…`` tokens) are rendered in the one response that created them, never kept in a
message, a session or the audit log."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from allauth.socialaccount.models import SocialAccount
from django.apps import apps
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model, login
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db.models import Prefetch, QuerySet
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.utils.dateparse import parse_datetime

from bursar.errors import DomainError, InvalidInput
from bursar.pages import csv_response, int_param, page, page_of, wants_csv
from governance import permissions, selectors
from governance.actors import actor_from_request
from governance.models import ApiToken, Customer, Invitation, Role, RoleGrant, Team
from governance.services import api_tokens as token_services
from governance.services import users as user_services

MAX_ID = 2**62
INVITATIONS_SHOWN = 50


# --- how grants and scopes read ------------------------------------------------------------


def scope_text(customers: Iterable[Customer], teams: Iterable[Team], *, scoped: bool = False) -> str:
    """``"customers Acme; teams payments, search"``; '' for the whole organisation; a
    scoped grant whose customers and teams were all deleted since sees nothing."""
    parts = []
    customer_names = [c.name for c in customers]
    team_slugs = [t.slug for t in teams]
    if customer_names:
        parts.append("customers " + ", ".join(customer_names))
    if team_slugs:
        parts.append("teams " + ", ".join(team_slugs))
    if scoped and not parts:
        return "nothing (the customers and teams it was limited to were deleted)"
    return "; ".join(parts)


@dataclass(frozen=True)
class GrantRow:
    """A role as the pages show it; ``grant`` is None for a superuser's implicit admin."""

    role: str
    scope: str
    grant: RoleGrant | None = None

    @property
    def label(self) -> str:
        return f"{self.role}: {self.scope}" if self.scope else self.role


def _grant_rows(user: User) -> list[GrantRow]:
    rows = [
        GrantRow(g.role, scope_text(g.customers.all(), g.teams.all(), scoped=g.scoped), g)
        for g in user.role_grants.all()
    ]
    if user.is_superuser and not any(row.role == Role.ADMIN for row in rows):
        rows.append(GrantRow(Role.ADMIN, "", None))
    return sorted(rows, key=lambda row: row.role)


def _grants_prefetch() -> Prefetch[Any]:
    return Prefetch("role_grants", queryset=RoleGrant.objects.prefetch_related("customers", "teams").order_by("role"))


@dataclass(frozen=True)
class UserRow:
    user: User
    grants: list[GrantRow]
    mfa: bool
    sso: list[str] = field(default_factory=list)

    @property
    def roles(self) -> str:
        return "; ".join(row.label for row in self.grants)


def _user_rows(found: Sequence[User]) -> list[UserRow]:
    """Users with their grants, whether they use MFA and which SSO accounts they linked
    (three queries for the whole page, not three per user)."""
    ids = [user.pk for user in found]
    with_mfa: set[int] = set()
    if apps.is_installed("allauth.mfa"):  # not with SSO only: the identity provider does MFA
        from allauth.mfa.models import Authenticator

        with_mfa = set(
            Authenticator.objects.filter(user_id__in=ids)
            .exclude(type=Authenticator.Type.RECOVERY_CODES)  # codes only back up a real factor
            .values_list("user_id", flat=True)
        )
    linked: dict[int, list[str]] = {}
    for user_id, provider in SocialAccount.objects.filter(user_id__in=ids).values_list("user_id", "provider"):
        linked.setdefault(user_id, []).append(provider)
    return [
        UserRow(user, _grant_rows(user), user.pk in with_mfa, sorted(set(linked.get(user.pk, [])))) for user in found
    ]


def _users() -> QuerySet[User]:
    return get_user_model().objects.prefetch_related(_grants_prefetch()).order_by("username", "pk")


# --- reading forms -------------------------------------------------------------------------


def _ids(form: QueryDict, name: str) -> list[int]:
    ids = []
    for raw in form.getlist(name):
        if not raw.strip():
            continue
        number = int_param(raw, default=0, minimum=0, maximum=MAX_ID)
        if not number:
            raise InvalidInput(f"{raw!r} is not an id", field=name)
        ids.append(number)
    return ids


def _scope(form: QueryDict) -> tuple[list[Customer], list[Team]]:
    """The customers and teams chosen in a form's multi-selects (refusing unknown ids)."""
    return user_services.scope_objects(_ids(form, "customers"), _ids(form, "teams"))


def _posted_pk(form: QueryDict, name: str) -> int:
    return int_param(form.get(name), default=0, maximum=MAX_ID) or 0


def _refusal(error: DomainError) -> dict[str, str]:
    return {error.field or "form": error.message}


def _scope_choices(form: Any) -> dict[str, Any]:
    """What the role-and-scope fields of a form offer, and what was chosen."""
    getlist = getattr(form, "getlist", None)
    return {
        "role_choices": Role.choices,
        "customers": list(Customer.objects.order_by("name", "pk")),
        "teams": list(Team.objects.order_by("slug")),
        "chosen_customers": getlist("customers") if getlist else [],
        "chosen_teams": getlist("teams") if getlist else [],
    }


def _secret_page(response: HttpResponse) -> HttpResponse:
    """A response carrying a secret: never cached, never sent on as a referrer."""
    add_never_cache_headers(response)
    response["Referrer-Policy"] = "no-referrer"
    return response


# --- users and invitations -----------------------------------------------------------------


@dataclass(frozen=True)
class InvitationRow:
    invitation: Invitation
    state: str
    scope: str

    @property
    def label(self) -> str:
        return f"{self.invitation.role}: {self.scope}" if self.scope else self.invitation.role


@page(permissions.can_manage_users)
def users(request: HttpRequest) -> HttpResponse:
    """Users (CSV with ``?format=csv``), invitations, and the invite form. POST
    ``action=invite`` shows the new link once; ``action=revoke_invitation`` withdraws one."""
    if request.method == "POST":
        action = request.POST.get("action")
        if action == "invite":
            return _invite(request)
        if action == "revoke_invitation":
            invitation = get_object_or_404(Invitation, pk=_posted_pk(request.POST, "invitation"))
            user_services.revoke_invitation(
                actor=actor_from_request(request, via="ui"), invitation=invitation, now=timezone.now()
            )
            messages.success(request, f"The invitation of {invitation.email} is revoked; its link no longer works.")
            return redirect("dashboard:users")
        return _users_page(request, errors={"form": f"unknown action {action!r}"}, status=400)
    if wants_csv(request):
        rows = _user_rows(list(_users()[:100_000]))
        return csv_response(
            "users.csv",
            ["id", "username", "email", "active", "roles", "last_login", "date_joined", "mfa", "sso"],
            [
                [
                    r.user.pk,
                    r.user.username,
                    r.user.email,
                    r.user.is_active,
                    r.roles,
                    r.user.last_login,
                    r.user.date_joined,
                    r.mfa,
                    " ".join(r.sso),
                ]
                for r in rows
            ],
        )
    return _users_page(request)


def _users_page(
    request: HttpRequest, *, errors: dict[str, str] | None = None, form: Any = None, status: int = 200
) -> HttpResponse:
    now = timezone.now()
    found, number, has_next = page_of(_users(), request)
    invitations = Invitation.objects.select_related("invited_by").prefetch_related("customers", "teams")
    context: dict[str, Any] = {
        "rows": _user_rows(found),
        "page": number,
        "has_next": has_next,
        "invitations": [
            InvitationRow(i, i.state(now), scope_text(i.customers.all(), i.teams.all(), scoped=i.scoped))
            for i in invitations[:INVITATIONS_SHOWN]
        ],
        "errors": errors or {},
        "form": form or {},
        "lifetime_days": user_services.INVITATION_LIFETIME.days,
        **_scope_choices(form),
    }
    return render(request, "dashboard/users.html", context, status=status)


def _invite(request: HttpRequest) -> HttpResponse:
    form = request.POST
    try:
        customers, teams = _scope(form)
        issued = user_services.invite(
            actor=actor_from_request(request, via="ui"),
            email=form.get("email", ""),
            role=form.get("role", ""),
            now=timezone.now(),
            customers=customers,
            teams=teams,
            base_url=request.build_absolute_uri("/"),
        )
    except DomainError as error:
        return _users_page(request, errors=_refusal(error), form=form, status=400)
    invitation = issued.invitation
    context = {
        "invitation": invitation,
        "link": request.build_absolute_uri(issued.path()),
        "grant": InvitationRow(invitation, "pending", scope_text(customers, teams)),
    }
    return _secret_page(render(request, "dashboard/invitation_link.html", context))


@page(permissions.can_manage_users)
def user_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """One user: grants (set, re-scope, revoke) and deactivation. POST ``action`` is
    ``grant``, ``revoke`` (with ``grant``: the RoleGrant id), ``deactivate`` or ``reactivate``."""
    user = get_object_or_404(_users(), pk=pk)
    if request.method == "POST":
        try:
            done = _change_user(request, user)
        except DomainError as error:
            return _user_page(request, user, errors=_refusal(error), form=request.POST, status=400)
        messages.success(request, done)
        return redirect("dashboard:user", pk=pk)
    return _user_page(request, user)


def _change_user(request: HttpRequest, user: User) -> str:
    actor = actor_from_request(request, via="ui")
    action = request.POST.get("action")
    name = user.get_username()
    if action == "grant":
        customers, teams = _scope(request.POST)
        grant = user_services.set_grant(
            actor=actor, user=user, role=request.POST.get("role", ""), customers=customers, teams=teams
        )
        return f"{name} now holds {GrantRow(grant.role, scope_text(customers, teams)).label}."
    if action == "revoke":
        grant = get_object_or_404(RoleGrant, pk=_posted_pk(request.POST, "grant"), user=user)
        user_services.revoke_role(actor=actor, grant=grant)
        return f"{name} no longer holds the {grant.role} role."
    if action in ("deactivate", "reactivate"):
        active = action == "reactivate"
        user_services.set_user_active(actor=actor, user=user, active=active)
        if active:
            return f"{name} is active again."
        return f"{name} is deactivated: sign-in is refused and their API tokens stop working."
    raise InvalidInput(f"unknown action {action!r}", field="form")


def _user_page(
    request: HttpRequest, user: User, *, errors: dict[str, str] | None = None, form: Any = None, status: int = 200
) -> HttpResponse:
    row = _user_rows([user])[0]
    context: dict[str, Any] = {
        "subject": user,
        "row": row,
        "tokens": [_token_row(t, timezone.now()) for t in selectors.list_api_tokens().filter(user=user)[:100]],
        "is_self": user.pk == request.user.pk,
        "errors": errors or {},
        "form": form or {},
        **_scope_choices(form),
    }
    return render(request, "dashboard/user.html", context, status=status)


# --- API tokens ----------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenRow:
    token: ApiToken
    scope: str
    state: str


def _token_row(token: ApiToken, now: datetime) -> TokenRow:
    if token.revoked_at is not None:
        state = "revoked"
    elif token.expires_at is not None and token.expires_at <= now:
        state = "expired"
    else:
        state = "active"
    return TokenRow(token, scope_text(token.customers.all(), token.teams.all(), scoped=token.scoped), state)


def _expiry(raw: str) -> datetime | None:
    """A form's optional expiry (``datetime-local``, read as UTC unless it names a zone)."""
    if not raw.strip():
        return None
    try:
        moment = parse_datetime(raw.strip())
    except ValueError:
        moment = None
    if moment is None:
        raise InvalidInput("a date and time such as 2030-01-31T12:00", field="expires_at")
    return moment if timezone.is_aware(moment) else moment.replace(tzinfo=UTC)


@page(permissions.can_manage_api_tokens)
def tokens(request: HttpRequest) -> HttpResponse:
    """API tokens and the create form (the token is shown once). POST ``action=create`` or
    ``action=revoke`` (with ``token``: its id)."""
    if request.method == "POST":
        action = request.POST.get("action", "create")
        actor = actor_from_request(request, via="ui")
        if action == "revoke":
            token = get_object_or_404(ApiToken, pk=_posted_pk(request.POST, "token"))
            token_services.revoke_api_token(actor=actor, token=token, now=timezone.now())
            messages.success(request, f"Token {token.name} ({token.prefix}…) is revoked.")
            return redirect("dashboard:tokens")
        if action != "create":
            return _tokens_page(request, errors={"form": f"unknown action {action!r}"}, status=400)
        form = request.POST
        owner = request.user if form.get("owner_me") and isinstance(request.user, User) else None
        try:
            customers, teams = _scope(form)
            issued = token_services.create_api_token(
                actor=actor,
                name=form.get("name", ""),
                role=form.get("role", ""),
                now=timezone.now(),
                user=owner,
                expires_at=_expiry(form.get("expires_at", "")),
                customers=customers,
                teams=teams,
            )
        except DomainError as error:
            return _tokens_page(request, errors=_refusal(error), form=form, status=400)
        context = {"token": issued.token, "secret": issued.secret, "scope": scope_text(customers, teams)}
        return _secret_page(render(request, "dashboard/token_secret.html", context))
    return _tokens_page(request)


def _tokens_page(
    request: HttpRequest, *, errors: dict[str, str] | None = None, form: Any = None, status: int = 200
) -> HttpResponse:
    now = timezone.now()
    listed = selectors.list_api_tokens()
    found, number, has_next = page_of(listed, request)
    context: dict[str, Any] = {
        "rows": [_token_row(token, now) for token in found],
        "page": number,
        "has_next": has_next,
        "errors": errors or {},
        "form": form or {},
        **_scope_choices(form),
    }
    return render(request, "dashboard/tokens.html", context, status=status)


# --- the public invitation page ------------------------------------------------------------


def _account_refusal(username: str, password: str, again: str) -> dict[str, str]:
    """Why a chosen username and password cannot be used (before the service's own
    checks: unique username, password validators)."""
    if not username:
        return {"username": "choose a username"}
    try:
        get_user_model()._meta.get_field("username").run_validators(username)
    except ValidationError as error:
        return {"username": " ".join(error.messages)}
    if not password:
        return {"password": "choose a password"}
    if password != again:
        return {"password2": "the two passwords differ"}
    return {}


def invitation(request: HttpRequest, secret: str) -> HttpResponse:
    """Accept an invitation: choose a username and password (unless SSO only), or sign in
    with a configured SSO provider using the invited address. Open without signing in;
    the secret in the link is the credential."""
    now = timezone.now()
    found = user_services.pending_invitation(secret=secret, now=now)
    if found is None:
        return _secret_page(render(request, "account/invitation.html", {"invalid": True}, status=404))
    context: dict[str, Any] = {
        "invitation": found,
        "grant": InvitationRow(found, "pending", scope_text(found.customers.all(), found.teams.all())),
        "sso_only": settings.SSO_ONLY,
        "errors": {},
        "form": {},
    }
    if request.method == "POST":
        username = request.POST.get("username", "").strip()
        context["form"] = {"username": username}
        if settings.SSO_ONLY:
            errors = {"form": "Passwords are switched off: sign in with single sign-on using the invited address."}
        else:
            password = request.POST.get("password1", "")
            errors = _account_refusal(username, password, request.POST.get("password2", ""))
            if not errors:
                try:
                    user = user_services.accept_invitation(
                        invitation=found,
                        now=now,
                        username=username,
                        password=password,
                        ip=actor_from_request(request, via="ui").ip,
                    )
                except DomainError as error:
                    errors = _refusal(error) if error.field in ("username", "password") else {"form": error.message}
                else:
                    login(request, cast(User, user), backend="django.contrib.auth.backends.ModelBackend")
                    messages.success(request, f"Welcome to Bursar, {user.get_username()}.")
                    return redirect("dashboard:home")
        context["errors"] = errors
        return _secret_page(render(request, "account/invitation.html", context, status=400))
    return _secret_page(render(request, "account/invitation.html", context))

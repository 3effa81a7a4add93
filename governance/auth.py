"""django-allauth hooks: who may sign in, and how an SSO sign-in finds its user.

- Local accounts are invitation-only: there is no open sign-up form; an invitation link
  (``governance.user_views``) creates the account.
- An SSO sign-in must carry a verified email in ``ALLOWED_EMAIL_DOMAINS`` (when set). It
  then signs in the user already linked to that SSO account; else links the user who has
  that email; else accepts a pending invitation of that email; else, when
  ``SSO_AUTO_PROVISION_VIEWERS`` is on, creates an organisation-wide viewer; else it is
  refused with a page that says why.
"""

from __future__ import annotations

from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from allauth.core.exceptions import ImmediateHttpResponse
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from allauth.socialaccount.models import SocialLogin
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.http import HttpRequest
from django.shortcuts import render
from django.utils import timezone

from bursar.errors import DomainError
from governance.actors import Actor, actor_from_request
from governance.models import Role
from governance.services import users as user_services
from governance.services.audit import record_audit


class InvitationOnlyAccountAdapter(DefaultAccountAdapter):
    """No open sign-up: accounts come from invitations (or ``createsuperuser``)."""

    def is_open_for_signup(self, request: HttpRequest) -> bool:
        return False


def _refuse(request: HttpRequest, reason: str, email: str = "") -> ImmediateHttpResponse:
    response = render(request, "account/sso_refused.html", {"reason": reason, "email": email}, status=403)
    return ImmediateHttpResponse(response)


def verified_email(sociallogin: SocialLogin) -> str:
    """The first email the provider says is verified ('' if none)."""
    for address in sociallogin.email_addresses:
        if address.verified and address.email:
            return str(address.email).strip().lower()
    return ""


class SsoAdapter(DefaultSocialAccountAdapter):
    def is_open_for_signup(self, request: HttpRequest, sociallogin: SocialLogin) -> bool:
        # ``pre_social_login`` has refused everyone who may not have an account.
        return True

    def pre_social_login(self, request: HttpRequest, sociallogin: SocialLogin) -> None:
        email = verified_email(sociallogin)
        if sociallogin.is_existing:
            user = sociallogin.user
            refusal = user_services.email_domain_refusal(user.email) if user.email else None
            if refusal:
                raise _refuse(request, refusal, user.email)
            return
        if not email:
            raise _refuse(request, "Your identity provider did not send a verified email address.")
        refusal = user_services.email_domain_refusal(email)
        if refusal:
            raise _refuse(request, refusal, email)
        existing = get_user_model().objects.filter(email__iexact=email).first()
        if existing is not None:
            if not existing.is_active:
                raise _refuse(request, "This account is deactivated; ask an admin.", email)
            with transaction.atomic():
                sociallogin.connect(request, existing)
                record_audit(
                    actor=Actor(label=f"user:{existing.get_username()}", via="ui", user_id=existing.pk,
                                ip=actor_from_request(request, via="ui").ip),
                    action="user.sso_link",
                    instance=existing,
                    before=None,
                    after={"provider": sociallogin.account.provider, "uid": sociallogin.account.uid},
                )  # fmt: skip
            return
        now = timezone.now()
        if user_services.pending_invitation(email=email, now=now) is not None:
            return
        if settings.SSO_AUTO_PROVISION_VIEWERS:
            return
        raise _refuse(request, "You have not been invited to Bursar. Ask an admin to invite this address.", email)

    @transaction.atomic
    def save_user(self, request: HttpRequest, sociallogin: SocialLogin, form: Any = None) -> Any:
        """The first sign-in of an invited (or, if allowed, any) email: the user, its role
        and the accepted invitation, audited, in one transaction."""
        user = super().save_user(request, sociallogin, form)
        now, ip = timezone.now(), actor_from_request(request, via="ui").ip
        actor = Actor(label=f"user:{user.get_username()}", via="ui", user_id=user.pk, ip=ip)
        user_services.record_user_created(actor=actor, user=user)
        invitation = user_services.pending_invitation(email=verified_email(sociallogin), now=now)
        try:
            if invitation is not None:
                user_services.grant_invited_role(actor=actor, invitation=invitation, user=user, now=now)
            elif settings.SSO_AUTO_PROVISION_VIEWERS:
                provisioner = Actor(label="system:sso-auto-provision", via="ui", ip=ip)
                user_services.set_grant(actor=provisioner, user=user, role=Role.VIEWER)
            else:  # the invitation was revoked, expired or used since the sign-in began
                raise _refuse(request, "Your invitation is no longer valid. Ask an admin for a new one.", user.email)
        except DomainError as error:  # e.g. the invitation's customers and teams were deleted
            raise _refuse(request, f"Your invitation cannot be accepted: {error}", user.email) from None
        return user

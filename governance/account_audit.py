"""Changes people make to their own sign-in (allauth's flows) go to the audit log too:
two-factor turned on or off (written by the authenticator row's own save or delete, so in
its transaction) and passwords set, changed or reset. Never the secret itself: only which
kind of authenticator, or that the password changed."""

from __future__ import annotations

from typing import Any

from allauth.core import context
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models.signals import post_delete, post_save

from governance.actors import Actor, actor_from_request
from governance.services.audit import record_audit


def _record(request: Any, user: Any, action: str, after: dict[str, Any]) -> None:
    # The person changing their own sign-in (a reset happens before any session exists).
    ip = actor_from_request(request, via="ui").ip if request is not None else None
    actor = Actor(label=f"user:{user.get_username()}", via="ui", user_id=user.pk, ip=ip)
    with transaction.atomic():
        record_audit(actor=actor, action=action, instance=user, before=None, after=after)


def on_authenticator_saved(sender: Any, instance: Any, created: bool, **kwargs: Any) -> None:
    if created:  # later saves record its use (a counter, a spent recovery code): not changes
        _record(context.request, instance.user, "mfa.enable", {"type": instance.type})


def on_authenticator_deleted(sender: Any, instance: Any, origin: Any = None, **kwargs: Any) -> None:
    if isinstance(origin, get_user_model()):  # the account itself is being deleted, with its factors
        return
    _record(context.request, instance.user, "mfa.disable", {"type": instance.type})


def on_password_change(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    _record(request, user, "user.password_change", {"password": "changed"})


def connect() -> None:
    from allauth.account import signals as account_signals
    from django.apps import apps

    for signal in (account_signals.password_set, account_signals.password_changed, account_signals.password_reset):
        signal.connect(on_password_change, dispatch_uid=f"governance.audit.{id(signal)}")
    if apps.is_installed("allauth.mfa"):
        from allauth.mfa.models import Authenticator

        post_save.connect(on_authenticator_saved, sender=Authenticator, dispatch_uid="governance.audit.mfa_saved")
        post_delete.connect(on_authenticator_deleted, sender=Authenticator, dispatch_uid="governance.audit.mfa_deleted")

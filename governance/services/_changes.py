"""Shared by the update services: apply a partial change and audit before/after."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from django.db import models

from governance.actors import Actor
from governance.services.audit import record_audit, snapshot

M = TypeVar("M", bound=models.Model)


def lock_for_update(instance: M) -> M:
    """Re-read ``instance`` under a row lock held until the transaction ends, so two
    concurrent changes to one row serialise and neither overwrites the other."""
    type(instance)._default_manager.select_for_update().filter(pk=instance.pk).values_list("pk").first()
    instance.refresh_from_db()
    return instance


def save_changes(
    *,
    actor: Actor,
    action: str,
    instance: models.Model,
    changes: Mapping[str, Any],
    audited_fields: tuple[str, ...],
    redacted_fields: tuple[str, ...] = (),
) -> models.Model:
    """Set ``changes`` on ``instance``, save it and audit it; no entry when nothing changed.

    A ``redacted_fields`` value (an encrypted credential) is compared but logged only as
    "changed", never as its value.

    Callers lock the row first (``lock_for_update``). Only changed columns are written.
    Side effects: updates the row and writes one AuditEntry when a value changed.
    """
    unknown = set(changes) - set(audited_fields)
    if unknown:
        raise ValueError(f"not updatable: {sorted(unknown)}")
    before = snapshot(instance, audited_fields)
    for name, value in changes.items():
        setattr(instance, name, value)
    after = snapshot(instance, audited_fields)
    if before != after:
        instance.full_clean(validate_unique=False)  # uniqueness is the database's: see callers
        changed = [field.attname for field in instance._meta.concrete_fields if field.name in changes]
        if any(field.name == "updated_at" for field in instance._meta.fields):
            changed.append("updated_at")
        instance.save(update_fields=changed)
        for name in redacted_fields:
            changed = before[name] != after[name]
            before[name] = "(unchanged)" if not changed else "(previous value)"
            after[name] = "(unchanged)" if not changed else "(new value)"
        record_audit(actor=actor, action=action, instance=instance, before=before, after=after)
    return instance

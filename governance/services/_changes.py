"""Shared by the update services: apply a partial change and audit before/after."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db import models

from governance.actors import Actor
from governance.services.audit import record_audit, snapshot


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
        instance.save()
        for name in redacted_fields:
            changed = before[name] != after[name]
            before[name] = "(unchanged)" if not changed else "(previous value)"
            after[name] = "(unchanged)" if not changed else "(new value)"
        record_audit(actor=actor, action=action, instance=instance, before=before, after=after)
    return instance

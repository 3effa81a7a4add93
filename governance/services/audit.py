"""The audit log: every change, hash-chained, in the transaction of the change."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, models, transaction
from django.utils import timezone

from governance.actors import Actor
from governance.audit_chain import GENESIS_HASH, entry_hash, hashed_content
from governance.models import AuditEntry

logger = logging.getLogger("bursar.audit")
# Any constant works: it names the PostgreSQL advisory lock that serialises appends.
_AUDIT_CHAIN_LOCK = 0x42555253


def snapshot(instance: models.Model, fields: Iterable[str]) -> dict[str, Any]:
    """The JSON-safe state of ``fields`` of ``instance`` (never pass secret fields)."""
    data: dict[str, Any] = {}
    for name in fields:
        field = instance._meta.get_field(name)
        if field.many_to_many:
            data[name] = sorted(getattr(instance, name).values_list("pk", flat=True)) if instance.pk else []
        elif isinstance(field, models.ForeignKey):
            data[name] = getattr(instance, field.attname)
        else:
            data[name] = getattr(instance, name)
    safe: dict[str, Any] = _json_safe(data)
    return safe


def _json_safe(value: Any) -> Any:
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


def record_audit(
    *,
    actor: Actor,
    action: str,
    instance: models.Model,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> AuditEntry:
    """Append one entry to the chain; must run inside the transaction of the change.

    Side effects: one AuditEntry row; holds the audit-chain lock until commit.
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("record_audit must run inside the transaction of the change it records")
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_AUDIT_CHAIN_LOCK])
    # On SQLite the IMMEDIATE transaction already holds the database's single write lock.
    last = AuditEntry.objects.order_by("-id").values_list("entry_hash", flat=True).first()
    prev_hash = last or GENESIS_HASH
    entry = AuditEntry(
        at=timezone.now(),
        actor=actor.label,
        actor_user_id=actor.user_id,
        actor_token_id=actor.api_token_id,
        via=actor.via,
        ip=actor.ip,
        action=action,
        object_type=instance._meta.label_lower,
        object_id=str(instance.pk),
        object_repr=str(instance)[:300],
        before=before,
        after=after,
        prev_hash=prev_hash,
    )
    entry.entry_hash = entry_hash(prev_hash=prev_hash, content=hashed_content(entry))
    entry.save(force_insert=True)
    logger.info(
        "change recorded",
        extra={
            "audit_id": entry.pk,
            "action": action,
            "object_type": entry.object_type,
            "object_id": entry.object_id,
            "actor": actor.label,
            "via": actor.via,
        },
    )
    return entry

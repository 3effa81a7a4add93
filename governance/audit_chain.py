"""The audit log's hash chain: what each entry's hash covers, and checking it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder

from governance.models import AuditEntry

GENESIS_HASH = "0" * 64


def entry_hash(*, prev_hash: str, content: dict[str, Any]) -> str:
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), cls=DjangoJSONEncoder)
    return hashlib.sha256(f"{prev_hash}\n{canonical}".encode()).hexdigest()


def hashed_content(entry: AuditEntry) -> dict[str, Any]:
    """The fields an entry's hash covers (everything but the hashes and the FK ids)."""
    return {
        "at": entry.at.isoformat(),
        "actor": entry.actor,
        "via": entry.via,
        "ip": entry.ip,
        "action": entry.action,
        "object_type": entry.object_type,
        "object_id": entry.object_id,
        "object_repr": entry.object_repr,
        "before": entry.before,
        "after": entry.after,
    }


@dataclass(frozen=True)
class ChainCheck:
    checked: int
    first_broken_id: int | None = None
    reason: str = ""


def verify_audit_chain() -> ChainCheck:
    """Walk the chain in order; the first entry whose link or content hash is wrong breaks it."""
    prev_hash = GENESIS_HASH
    checked = 0
    for entry in AuditEntry.objects.order_by("id").iterator(chunk_size=2000):
        if entry.prev_hash != prev_hash:
            return ChainCheck(checked, entry.pk, "previous entry missing or changed")
        if entry.entry_hash != entry_hash(prev_hash=prev_hash, content=hashed_content(entry)):
            return ChainCheck(checked, entry.pk, "entry content changed")
        prev_hash = entry.entry_hash
        checked += 1
    return ChainCheck(checked)

"""Writes for gateway nodes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction

from bursar.errors import Conflict
from governance.actors import Actor
from governance.crypto import encrypt
from governance.models import GatewayNode
from governance.secrets import generate_secret
from governance.services._changes import lock_for_update, save_changes
from governance.services.audit import record_audit, snapshot
from governance.services.config import schedule_push

NODE_FIELDS = ("name", "kind", "base_url", "ingest_token_prefix")
# last_seen_at is written at most this often per node, not on every batch.
LAST_SEEN_RESOLUTION = timedelta(seconds=10)


@dataclass(frozen=True)
class RegisteredNode:
    node: GatewayNode
    ingest_token: str


@transaction.atomic
def register_gateway_node(
    *, actor: Actor, name: str, kind: str = "generic", base_url: str = "", admin_token: str = ""
) -> RegisteredNode:
    """Register a node; the returned ingest token is the only copy there will ever be.

    Side effects: one GatewayNode row, one AuditEntry (never a token).
    """
    token = generate_secret("bsn_")
    node = GatewayNode(
        name=name,
        kind=kind,
        base_url=base_url,
        admin_token_encrypted=encrypt(admin_token),
        ingest_token_prefix=token.prefix,
        ingest_token_sha256=token.sha256,
        ingest_token_encrypted=encrypt(token.value),
    )
    node.full_clean(validate_unique=False)
    try:
        with transaction.atomic():
            node.save()
    except IntegrityError:
        raise Conflict(f"a gateway node named {name!r} already exists", field="name") from None
    after = snapshot(node, NODE_FIELDS) | {"admin_token_set": bool(admin_token)}
    record_audit(actor=actor, action="gateway_node.register", instance=node, before=None, after=after)
    if node.base_url:
        schedule_push(node_ids=[node.pk])  # a new node gets the latest config at once
    return RegisteredNode(node=node, ingest_token=token.value)


@transaction.atomic
def rotate_node_token(*, actor: Actor, node: GatewayNode) -> RegisteredNode:
    """Give a node a new ingest token (the old one stops working at once); returned once.

    Side effects: updates the GatewayNode row; one AuditEntry (never a token).
    """
    lock_for_update(node)
    before = snapshot(node, NODE_FIELDS)
    token = generate_secret("bsn_")
    node.ingest_token_prefix = token.prefix
    node.ingest_token_sha256 = token.sha256
    node.ingest_token_encrypted = encrypt(token.value)
    try:
        with transaction.atomic():
            node.save(
                update_fields=["ingest_token_prefix", "ingest_token_sha256", "ingest_token_encrypted", "updated_at"]
            )
    except IntegrityError:  # a 256-bit collision: practically impossible, still not a 500
        raise Conflict("could not generate a unique token; try again") from None
    record_audit(
        actor=actor, action="gateway_node.rotate_token", instance=node, before=before, after=snapshot(node, NODE_FIELDS)
    )
    if node.base_url:
        schedule_push(node_ids=[node.pk], force=True)  # generic pushes are signed with the token
    return RegisteredNode(node=node, ingest_token=token.value)


@transaction.atomic
def update_gateway_node(*, actor: Actor, node: GatewayNode, changes: dict[str, Any]) -> GatewayNode:
    """Change a node's name, kind, base URL or admin token.

    Side effects: updates the GatewayNode row; one AuditEntry when something changed.
    """
    lock_for_update(node)
    changes = dict(changes)
    if "admin_token" in changes:
        changes["admin_token_encrypted"] = encrypt(changes.pop("admin_token") or "")
    try:
        with transaction.atomic():
            save_changes(
                actor=actor,
                action="gateway_node.update",
                instance=node,
                changes=changes,
                audited_fields=(*NODE_FIELDS, "admin_token_encrypted"),
                redacted_fields=("admin_token_encrypted",),
            )
    except IntegrityError:
        raise Conflict("a gateway node with this name already exists", field="name") from None
    if node.base_url and {"kind", "base_url", "admin_token_encrypted"} & set(changes):
        # Another gateway, address or credential: start over with it.
        GatewayNode.objects.filter(pk=node.pk).update(
            applied_version=None, push_failures=0, next_push_at=None, state={}
        )
        schedule_push(node_ids=[node.pk], force=True)
    return node


@transaction.atomic
def delete_gateway_node(*, actor: Actor, node: GatewayNode) -> None:
    """Remove a node; its ingest token stops working at once.

    Side effects: deletes the GatewayNode row; one AuditEntry.
    """
    record_audit(
        actor=actor, action="gateway_node.delete", instance=node, before=snapshot(node, NODE_FIELDS), after=None
    )
    node.delete()


def mark_gateway_node_seen(*, node: GatewayNode, now: datetime) -> None:
    """Record that a node sent something, at most once per LAST_SEEN_RESOLUTION.

    Side effects: a conditional UPDATE of GatewayNode.last_seen_at (not audited).
    """
    if node.last_seen_at is not None and now - node.last_seen_at < LAST_SEEN_RESOLUTION:
        return
    GatewayNode.objects.filter(pk=node.pk).update(last_seen_at=now)
    node.last_seen_at = now

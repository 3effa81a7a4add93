"""Config revisions and their delivery to every gateway node.

- ``revise_config`` renders the desired state and stores a new ``ConfigRevision`` only
  when it differs from the latest. Renders hold one row lock, so they never race; a
  queued request whose change an earlier render already saw is skipped, so a burst of
  changes (a batch crossing a thousand caps) makes one revision.
- ``push_config`` sends the latest revision to the nodes that need it, concurrently,
  each under its own row lock (one push per node at a time, and always the newest
  revision at send time: a node never gets an older one after a newer). A failure
  sets the node's next attempt with exponential backoff and jitter.
- ``converge_nodes`` (beat) pushes to nodes that are behind and due, and checks drift.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from governance.desired_state import canonical_json, content_sha256, render_desired_state
from governance.gateways import Revision, adapter_for
from governance.gateways.base import ApplyResult, describe
from governance.models import ConfigPushAttempt, ConfigRenderMark, ConfigRevision, GatewayNode

logger = logging.getLogger("bursar.config")


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


# --- revisions ----------------------------------------------------------------------------


def request_render() -> None:
    """Count a render request in the current transaction (see ConfigRenderMark).

    Side effects: increments ``ConfigRenderMark.requested`` (row-locked until commit).
    """
    ConfigRenderMark.objects.get_or_create(pk=1)
    ConfigRenderMark.objects.filter(pk=1).update(requested=F("requested") + 1)


def requests_so_far() -> int:
    return ConfigRenderMark.objects.filter(pk=1).values_list("requested", flat=True).first() or 0


def render_owed() -> bool:
    mark = ConfigRenderMark.objects.filter(pk=1).values("requested", "rendered").first()
    return bool(mark and mark["requested"] > mark["rendered"])


def revise_config(*, reason: str, urgent: bool = False, covering: int | None = None) -> ConfigRevision | None:
    """Render the desired state; store it as a new revision if it changed.

    ``covering``: the request count this render must include (read after the asking
    change committed). If an earlier render already covered it, this one is skipped.
    Returns the new revision, or None (nothing changed, or already covered).
    Side effects: the render mark; at most one ConfigRevision row.
    """
    with transaction.atomic():
        mark, _ = ConfigRenderMark.objects.select_for_update().get_or_create(pk=1)
        if covering is not None and mark.rendered >= covering:
            return None
        started = timezone.now()
        text = canonical_json(render_desired_state(now=started))
        digest = content_sha256(text)
        mark.rendered, mark.rendered_at = mark.requested, started
        mark.save(update_fields=["rendered", "rendered_at"])
        latest = ConfigRevision.objects.order_by("-version").values_list("sha256", flat=True).first()
        if latest == digest:
            return None
        revision = ConfigRevision.objects.create(
            document=text, sha256=digest, reason=reason[:500], urgent=urgent, created_at=started
        )
    logger.info(
        "config revision", extra={"version": revision.version, "reason": reason, "urgent": urgent, "sha256": digest}
    )
    return revision


def latest_revision(*, create: bool = True) -> ConfigRevision | None:
    """The newest revision; the first one is rendered on demand."""
    revision = ConfigRevision.objects.order_by("-version").first()
    if revision is None and create:
        revise_config(reason="first render")
        revision = ConfigRevision.objects.order_by("-version").first()
    return revision


def revision_document(revision: ConfigRevision) -> dict[str, Any]:
    content: dict[str, Any] = orjson.loads(revision.document)
    return {"version": revision.version, "issued_at": _iso(revision.created_at), **content}


_delivery_cache: dict[int, Revision] = {}
_delivery_lock = threading.Lock()


def revision_for_delivery(revision: ConfigRevision) -> Revision:
    """The delivery form of a revision, built once per process and version.

    The body is the canonical JSON of ``{issued_at, version, **content}``: the stored
    document is already canonical JSON of the content, and in sorted order ``issued_at``
    and ``version`` come before ``virtual_keys``, so the body is spliced, not re-encoded.
    """
    with _delivery_lock:
        cached = _delivery_cache.get(revision.version)
        if cached is not None and cached.sha256 == revision.sha256:
            return cached
        prefix = canonical_json({"issued_at": _iso(revision.created_at), "version": revision.version})
        assert revision.document.startswith('{"virtual_keys":'), "the content's only key is virtual_keys"
        body = (prefix[:-1] + "," + revision.document[1:]).encode()
        delivery = Revision(version=revision.version, sha256=revision.sha256, document=revision.document, body=body)
        _delivery_cache.clear()  # only the newest matters; older versions are never sent again
        _delivery_cache[revision.version] = delivery
        return delivery


def push_now(*, reason: str) -> ConfigRevision:
    """Render the desired state now and re-send the latest revision to every push node
    (the API's ``config/push/`` and the dashboard's button). Returns that revision.

    Side effects: at most one ConfigRevision; a push queued after commit.
    """
    revise_config(reason=reason)
    latest = latest_revision()
    assert latest is not None  # latest_revision renders the first one
    schedule_push(force=True)
    return latest


def on_desired_state_changed(
    sender: Any, *, reason: str, urgent: bool = False, covering: int = 0, **kwargs: Any
) -> None:
    """The receiver of ``desired_state_changed`` (sent after the change committed):
    queue a render, and a push if it makes a revision. Urgent requests (a hard-cap
    block) run at once; routine ones wait CONFIG_COALESCE_SECONDS so a burst of changes
    makes one revision."""
    from governance.tasks import revise_and_push_task  # tasks import services, not the reverse

    try:
        if settings.CELERY_TASK_ALWAYS_EAGER:
            revise_and_push_task.apply(args=(reason, urgent, covering))
        else:
            delay = 0 if urgent else settings.CONFIG_COALESCE_SECONDS
            revise_and_push_task.apply_async(args=(reason, urgent, covering), countdown=delay)
    except Exception:  # a broker outage: the converge pass sees the owed render and catches up
        logger.warning("config revision not queued; the converge pass will catch up", extra={"reason": reason})


def schedule_push(*, node_ids: list[int] | None = None, force: bool = False) -> None:
    """After commit, queue a push of the latest revision (to ``node_ids`` or all)."""

    def enqueue() -> None:
        from governance.tasks import push_config_task

        try:
            push_config_task.delay(node_ids, force)
        except Exception:
            logger.warning("config push not queued; the converge pass will catch up")

    transaction.on_commit(enqueue, robust=True)


# --- delivery -----------------------------------------------------------------------------


@dataclass
class PushReport:
    version: int | None
    pushed: list[int] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)
    current: list[int] = field(default_factory=list)


def backoff(failures: int) -> timedelta:
    """1 s, 2 s, 4 s ... capped at CONFIG_PUSH_MAX_BACKOFF_SECONDS, ±25% jitter."""
    base = min(2.0 ** max(failures - 1, 0), float(settings.CONFIG_PUSH_MAX_BACKOFF_SECONDS))
    return timedelta(seconds=base * random.uniform(0.75, 1.25))  # noqa: S311 - jitter, not security


def push_targets() -> Q:
    """Nodes Bursar pushes to: those with a base URL (the rest pull)."""
    return ~Q(base_url="")


def push_config(*, node_ids: list[int] | None = None, force: bool = False) -> PushReport:
    """Send the latest revision to every push node that does not have it (or to
    ``node_ids``; ``force`` re-sends to nodes that already have it), concurrently.

    Side effects: per node, one ConfigPushAttempt and its push fields; HTTP requests.
    """
    revision = latest_revision()
    report = PushReport(version=revision.version if revision else None)
    if revision is None:
        return report
    nodes = GatewayNode.objects.filter(push_targets())
    if node_ids is not None:
        nodes = nodes.filter(pk__in=node_ids)
    if not force:
        nodes = nodes.filter(Q(applied_version__isnull=True) | Q(applied_version__lt=revision.version))
    ids = list(nodes.order_by("pk").values_list("pk", flat=True))
    if not ids:
        return report
    # SQLite (the embedded default) allows one writer: push one node at a time there.
    workers = min(settings.CONFIG_PUSH_CONCURRENCY, len(ids)) if connection.vendor == "postgresql" else 1
    if workers == 1:
        outcomes = [_push_one(node_id, force=force) for node_id in ids]
    else:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="config-push") as pool:
            outcomes = list(pool.map(lambda node_id: _push_in_thread(node_id, force=force), ids))
    for node_id, (state, error) in zip(ids, outcomes, strict=True):
        if state == "pushed":
            report.pushed.append(node_id)
        elif state == "current":
            report.current.append(node_id)
        else:
            report.failed[node_id] = error
    return report


def _push_in_thread(node_id: int, *, force: bool) -> tuple[str, str]:
    try:
        return _push_one(node_id, force=force)
    finally:
        connection.close()  # each pool thread had its own connection


@contextmanager
def _holding(node_id: int) -> Iterator[GatewayNode | None]:
    """The node, held for one delivery. On PostgreSQL a row lock for the whole push (a
    second pusher waits, then finds it current), so deliveries to a node never overlap
    or go out of order. On SQLite (the embedded default: one process, pushes one at a
    time) no transaction is kept open across HTTP, which would lock the whole database."""
    if connection.vendor == "postgresql":
        with transaction.atomic():
            yield GatewayNode.objects.select_for_update().filter(pk=node_id).first()
    else:
        yield GatewayNode.objects.filter(pk=node_id).first()


def _push_one(node_id: int, *, force: bool) -> tuple[str, str]:
    """One node, held while it is pushed to (``_holding``)."""
    with _holding(node_id) as node:
        if node is None:
            return "current", ""
        revision = ConfigRevision.objects.order_by("-version").first()
        if revision is None or (
            not force and node.applied_version is not None and node.applied_version >= revision.version
        ):
            return "current", ""
        started = time.perf_counter()
        try:
            result = adapter_for(node, timeout=settings.CONFIG_PUSH_TIMEOUT_SECONDS).apply(
                revision_for_delivery(revision)
            )
        except Exception as exc:  # an adapter bug must not stop the other nodes
            logger.exception("config adapter failed", extra={"node_id": node_id})
            result = ApplyResult(ok=False, error=describe(exc))
        _record(node, revision.version, result, action="apply", duration=time.perf_counter() - started)
    return ("pushed", "") if result.ok else ("failed", result.error)


def _record(
    node: GatewayNode, version: int, result: ApplyResult, *, action: str, duration: float, detail: str = ""
) -> None:
    now = timezone.now()
    ConfigPushAttempt.objects.create(
        node=node,
        version=version,
        action=action,
        at=now,
        succeeded=result.ok,
        status_code=result.status_code,
        error=result.error,
        detail=detail[:2000],
        duration_ms=round(duration * 1000),
    )
    node.last_push_at = now
    if result.state is not None:
        node.state = result.state
    if result.ok:
        node.applied_version = max(node.applied_version or 0, version)
        node.last_error, node.push_failures, node.next_push_at, node.drift = "", 0, None, result.warning[:2000]
    else:
        node.push_failures += 1
        node.last_error = result.error[:2000]
        node.next_push_at = now + backoff(node.push_failures)
    node.save(
        update_fields=[
            "last_push_at",
            "state",
            "applied_version",
            "last_error",
            "push_failures",
            "next_push_at",
            "drift",
        ]
    )
    log = logger.info if result.ok else logger.warning
    log(
        "config push",
        extra={"node_id": node.pk, "version": version, "action": action, "ok": result.ok, "error": result.error},
    )


def retry_delay(node_id: int) -> float | None:
    """Seconds until a failed node's next attempt (None when it is not waiting)."""
    next_at = GatewayNode.objects.filter(pk=node_id).values_list("next_push_at", flat=True).first()
    return max((next_at - timezone.now()).total_seconds(), 0.0) if next_at else None


@dataclass
class ConvergeReport:
    pushed: int = 0
    failed: int = 0
    checked: int = 0
    repaired: int = 0


def converge_nodes(*, now: datetime) -> ConvergeReport:
    """The beat's pass: push to nodes behind whose backoff has passed; check nodes that
    are current for drift every CONFIG_DRIFT_CHECK_SECONDS and repair what drifted.

    Side effects: pushes and ConfigPushAttempt rows; node drift fields.
    """
    report = ConvergeReport()
    if render_owed():  # a change whose render task was lost (broker down, worker died)
        revise_config(reason="catch-up render")
    revision = latest_revision()
    if revision is None:
        return report
    due = list(
        GatewayNode.objects.filter(push_targets())
        .filter(Q(applied_version__isnull=True) | Q(applied_version__lt=revision.version))
        .filter(Q(next_push_at__isnull=True) | Q(next_push_at__lte=now))
        .values_list("pk", flat=True)
    )
    if due:
        pushed = push_config(node_ids=due)
        report.pushed, report.failed = len(pushed.pushed), len(pushed.failed)
    stale = now - timedelta(seconds=settings.CONFIG_DRIFT_CHECK_SECONDS)
    for node_id in (
        GatewayNode.objects.filter(push_targets(), applied_version=revision.version)
        .filter(Q(last_checked_at__isnull=True) | Q(last_checked_at__lte=stale))
        .values_list("pk", flat=True)
    ):
        report.checked += 1
        report.repaired += check_drift(node_id=node_id, now=now)
    return report


def check_drift(*, node_id: int, now: datetime) -> bool:
    """Observe one node; if it no longer enforces the latest revision, apply it again.
    Returns True when a repair was made.

    Side effects: the node's ``drift`` and ``last_checked_at``; a repair attempt.
    """
    with _holding(node_id) as node:
        revision = ConfigRevision.objects.order_by("-version").first()
        if node is None or revision is None:
            return False
        delivery = revision_for_delivery(revision)
        adapter = adapter_for(node, timeout=settings.CONFIG_PUSH_TIMEOUT_SECONDS)
        try:
            seen = adapter.observe(delivery)
        except Exception as exc:
            logger.exception("config observe failed", extra={"node_id": node_id})
            node.drift, node.last_checked_at = describe(exc), now
            node.save(update_fields=["drift", "last_checked_at"])
            return False
        node.last_checked_at = now
        if seen.in_sync is not False:  # in sync, or a gateway that cannot be observed
            node.drift = ""
            node.save(update_fields=["drift", "last_checked_at"])
            return False
        node.drift = (seen.detail or "; ".join(seen.differences))[:2000] or "differs from the latest revision"
        node.save(update_fields=["drift", "last_checked_at"])
        started = time.perf_counter()
        try:
            result = adapter.apply(delivery)
        except Exception as exc:
            result = ApplyResult(ok=False, error=describe(exc))
        _record(
            node, revision.version, result, action="repair", duration=time.perf_counter() - started, detail=node.drift
        )
        if not result.ok:
            node.applied_version = None  # behind again: the push path retries it with backoff
            node.save(update_fields=["applied_version"])
        return result.ok


def mark_pulled(*, node: GatewayNode, version: int, now: datetime) -> None:
    """A pull-mode node fetched (or already held) ``version``.

    Side effects: the node's ``last_push_at`` (its last fetch) and, when newer, its
    ``applied_version`` (conditional UPDATEs: a stale fetch never moves it back).
    """
    GatewayNode.objects.filter(pk=node.pk).update(last_push_at=now, last_error="")
    GatewayNode.objects.filter(pk=node.pk).filter(
        Q(applied_version__isnull=True) | Q(applied_version__lt=version)
    ).update(applied_version=version)

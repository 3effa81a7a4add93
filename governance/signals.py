"""The hooks other apps listen to (governance never imports them: dependencies flow
ingest → billing → governance, so the others connect receivers here)."""

from __future__ import annotations

from django.dispatch import Signal

# Sent after commit whenever the state gateways should enforce may have changed (keys
# blocked or unblocked by budgets; keys issued, changed, rotated, revoked, expired).
# Keyword arguments: ``reason`` (str), ``urgent`` (bool: a block caused by a hard cap,
# which must reach the gateways ahead of routine changes) and ``covering`` (the render
# request count the next render must include; see ConfigRenderMark).
desired_state_changed = Signal()

# Sent inside the creating transaction with ``budget`` and its current period's
# ``start`` and ``end``: billing answers with the spend already made in that period
# (a budget created on the 20th starts from the month's spend so far, not zero).
budget_opened = Signal()

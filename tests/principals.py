"""The roles the access matrices try, each inside or outside the scope of a test world.

A world holds ``customer`` with ``team`` (and a key in that team), and ``other_customer``
with ``other_team``. ``lead`` leads ``team``; ``cust_viewer`` views ``customer``; the
``out_`` principals hold the same roles over the other customer and team only."""

from __future__ import annotations

from typing import Any

ORG_WIDE = frozenset({"admin", "finance", "viewer"})
IN_SCOPE = frozenset({"lead", "cust_viewer"})
OUT_OF_SCOPE = frozenset({"out_lead", "out_viewer"})
PRINCIPALS = ("admin", "finance", "viewer", "lead", "cust_viewer", "out_lead", "out_viewer")
EVERYONE = frozenset(PRINCIPALS)


def grant_for(principal: str, world: dict[str, Any]) -> dict[str, Any]:
    """``role``, ``customers`` and ``teams`` for a token, user or invitation."""
    grants: dict[str, dict[str, Any]] = {
        "admin": {"role": "admin"},
        "finance": {"role": "finance"},
        "viewer": {"role": "viewer"},
        "lead": {"role": "team_lead", "teams": [world["team"]]},
        "cust_viewer": {"role": "viewer", "customers": [world["customer"]]},
        "out_lead": {"role": "team_lead", "teams": [world["other_team"]]},
        "out_viewer": {"role": "viewer", "customers": [world["other_customer"]]},
    }
    return grants[principal]

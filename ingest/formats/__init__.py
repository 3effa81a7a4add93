"""Format adapters: each turns one request body into a list of native-shaped dicts.

An item that could not even be read (a bad NDJSON line) is a ``Rejected`` in its place,
so indexes in the response still point at the client's own items.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class UnreadableBody(Exception):
    """The body as a whole is not the format it claims: 400, nothing stored."""


@dataclass(frozen=True)
class Rejected:
    errors: dict[str, list[str]]


@dataclass
class ParsedBody:
    items: list[dict[str, Any] | Rejected]
    # Items that are not usage at all (an OTLP span without GenAI attributes): skipped, not errors.
    ignored: int = 0
    # Set when the whole body was validated in one pass: the events, serialised for the
    # outbox, and how many there are. ``items`` is then empty.
    validated_json: bytes | None = None
    validated_count: int = 0

"""Native events: a JSON array (or one object), or NDJSON, one event per line."""

from __future__ import annotations

from typing import Any

import orjson

from ingest.formats import ParsedBody, Rejected, UnreadableBody
from ingest.schema import validate_json_array


def parse_json_or_ndjson(body: bytes, *, ndjson: bool) -> list[Any]:
    """The items of a JSON array / single object, or of NDJSON lines (a bad line becomes a
    ``Rejected`` in its place). orjson parses several times faster than ``json``."""
    if not ndjson:
        stripped = body.lstrip()
        if stripped[:1] not in (b"[", b"{"):
            ndjson = bool(stripped)  # tolerate NDJSON sent without its media type
        else:
            try:
                data = orjson.loads(body)
            except orjson.JSONDecodeError as error:
                if stripped[:1] == b"{" and b"\n" in body.strip():
                    ndjson = True  # several objects, one per line
                else:
                    raise UnreadableBody(f"body is not valid JSON: {error}") from None
            else:
                return data if isinstance(data, list) else [data]
    items: list[Any] = []
    for number, line in enumerate(body.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            items.append(orjson.loads(line))
        except orjson.JSONDecodeError as error:
            items.append(Rejected({"non_field_errors": [f"line {number} is not valid JSON: {error}"]}))
    if not items:
        raise UnreadableBody("body holds no events")
    return items


def parse_native(body: bytes, *, ndjson: bool) -> ParsedBody:
    if not ndjson and body.lstrip()[:1] == b"[":
        validated = validate_json_array(body)
        if validated is not None:
            return ParsedBody(items=[], validated_json=validated[0], validated_count=validated[1])
    return ParsedBody(items=parse_json_or_ndjson(body, ndjson=ndjson))

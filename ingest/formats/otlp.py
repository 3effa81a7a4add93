"""OTLP/HTTP trace exports (protobuf or JSON) carrying OpenTelemetry GenAI attributes.

This is what Bifrost's otel plugin and most gateways export. A span is usage when it
names a model (``gen_ai.response.model`` or ``gen_ai.request.model``); other spans (HTTP
server spans, internal steps) are skipped and counted as ignored. Span events, where
prompt and completion text live, are never read.
"""

from __future__ import annotations

import base64
import math
from datetime import UTC, datetime
from typing import Any

import orjson
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from ingest.formats import ParsedBody, Rejected, UnreadableBody

STATUS_CODE_ERROR = 2
OPERATIONS = {
    "chat": "chat",
    "generate_content": "chat",
    "text_completion": "completion",
    "embeddings": "embedding",
    "embedding": "embedding",
    "create_image": "image",
    "image_generation": "image",
    "rerank": "rerank",
}
CUSTOMER_KEYS = ("bursar.customer", "x-bf-dim-customer", "gen_ai.request.user", "user.id", "enduser.id")
STAGE_KEYS = ("bursar.pipeline_stage", "x-bf-dim-pipeline-stage", "pipeline_stage")
TAG_PREFIXES = ("x-bf-dim-", "bursar.tag.")


def _any_value_pb(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_any_value_pb(item) for item in value.array_value.values]
    if kind in ("kvlist_value", "bytes_value") or kind is None:
        return None
    return getattr(value, kind)


def _any_value_json(value: Any) -> Any:
    if not isinstance(value, dict):
        return None
    for key in ("stringValue", "boolValue", "doubleValue"):
        if key in value:
            return value[key]
    if "intValue" in value:  # 64-bit integers travel as strings in OTLP/JSON
        try:
            return int(value["intValue"])
        except (TypeError, ValueError):
            return None
    array = value.get("arrayValue")
    if isinstance(array, dict) and isinstance(array.get("values"), list):
        return [_any_value_json(item) for item in array["values"]]
    return None


def _attributes_json(attributes: Any) -> dict[str, Any]:
    if not isinstance(attributes, list):
        return {}
    return {
        item["key"]: _any_value_json(item.get("value"))
        for item in attributes
        if isinstance(item, dict) and isinstance(item.get("key"), str)
    }


def _hex_id(value: Any) -> str:
    """OTLP/JSON ids are hex; tolerate base64 (protobuf's generic JSON mapping) too."""
    if not isinstance(value, str):
        return ""
    if all(char in "0123456789abcdefABCDEF" for char in value):
        return value.lower()
    try:
        return base64.b64decode(value, validate=True).hex()
    except ValueError:
        return ""


def _first(attributes: dict[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        value = attributes.get(key)
        if value not in (None, ""):
            return value
    return None


def _tokens(value: Any) -> int:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and 0 < value < 1e13:
        return int(value)
    return 0


def _instant(nanoseconds: int) -> str | None:
    """RFC 3339 for a span time, or None when it is not a plausible instant."""
    if not 0 < nanoseconds < 4_102_444_800 * 10**9:  # before 2100
        return None
    return datetime.fromtimestamp(nanoseconds / 1e9, UTC).isoformat()


def span_to_native(
    *, trace_id: str, span_id: str, start_ns: int, end_ns: int, status_code: int, attributes: dict[str, Any]
) -> dict[str, Any] | None:
    model = _first(attributes, ("gen_ai.response.model", "gen_ai.request.model"))
    if model is None:
        return None
    cached = _tokens(
        _first(attributes, ("gen_ai.usage.cache_read.input_tokens", "gen_ai.usage.cache_read_input_tokens"))
    )
    cache_write = _tokens(
        _first(attributes, ("gen_ai.usage.cache_creation.input_tokens", "gen_ai.usage.cache_creation_input_tokens"))
    )
    prompt = _tokens(_first(attributes, ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens")))
    http_status = attributes.get("http.response.status_code") or attributes.get("http.status_code")
    if isinstance(http_status, int) and 100 <= http_status <= 599:
        status = http_status
    else:
        status = 500 if status_code == STATUS_CODE_ERROR else 200
    cache_hit = _first(attributes, ("bursar.cache", "gen_ai.cache.hit", "bifrost.cache.hit", "cache_hit"))
    cache_type = str(_first(attributes, ("bifrost.cache.type", "gen_ai.cache.type")) or "")
    retries = _first(attributes, ("bifrost.fallback_index", "bifrost.retries", "bursar.fallback"))
    tags = {
        key.removeprefix("x-bf-dim-").removeprefix("bursar.tag.")[:100]: value
        for key, value in attributes.items()
        if key.startswith(TAG_PREFIXES)
        and key not in CUSTOMER_KEYS + STAGE_KEYS
        and isinstance(value, str | int | float | bool)
    }
    return {
        "request_id": f"{trace_id}:{span_id}" if trace_id and span_id else None,
        "timestamp": _instant(start_ns),
        "provider": _first(attributes, ("gen_ai.provider.name", "gen_ai.system")),
        "model": model,
        "customer": _first(attributes, CUSTOMER_KEYS),
        "team": _first(attributes, ("bursar.team", "x-bf-dim-team", "bifrost.team.name")),
        "virtual_key": _first(attributes, ("bursar.virtual_key", "bifrost.virtual_key.name", "bifrost.virtual_key.id")),
        "operation": OPERATIONS.get(str(attributes.get("gen_ai.operation.name")), "other"),
        "input_tokens": max(prompt, cached + cache_write),
        "output_tokens": _tokens(_first(attributes, ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens"))),
        "cached_input_tokens": cached,
        "cache_write_tokens": cache_write,
        "cost": attributes.get("gen_ai.usage.cost"),
        "latency_ms": round((end_ns - start_ns) / 1e6) if 0 < start_ns <= end_ns < start_ns + 86_400 * 10**9 else None,
        "status": status,
        "cache": "semantic"
        if cache_type == "semantic"
        else ("exact" if cache_hit in (True, "true", "hit") else "none"),
        "fallback": bool(retries) if isinstance(retries, bool | int) else False,
        "pipeline_stage": _first(attributes, STAGE_KEYS),
        "tags": dict(list(tags.items())[:50]),
    }


def _parse_protobuf(body: bytes) -> ParsedBody:
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(body)
    except DecodeError as error:
        raise UnreadableBody(f"body is not an OTLP ExportTraceServiceRequest: {error}") from None
    parsed = ParsedBody(items=[])
    for resource_spans in request.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                attributes = {item.key: _any_value_pb(item.value) for item in span.attributes}
                _add(
                    parsed,
                    span_to_native(
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        start_ns=span.start_time_unix_nano,
                        end_ns=span.end_time_unix_nano,
                        status_code=span.status.code,
                        attributes=attributes,
                    ),
                )
    return parsed


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _parse_json(body: bytes) -> ParsedBody:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise UnreadableBody(f"body is not valid JSON: {error}") from None
    if not isinstance(data, dict) or not isinstance(data.get("resourceSpans") or [], list):
        raise UnreadableBody("body is not an OTLP/JSON ExportTraceServiceRequest (no resourceSpans list)")
    parsed = ParsedBody(items=[])
    for resource_spans in _list(data.get("resourceSpans")):
        for scope_spans in _list(resource_spans.get("scopeSpans")) if isinstance(resource_spans, dict) else []:
            for span in _list(scope_spans.get("spans")) if isinstance(scope_spans, dict) else []:
                if not isinstance(span, dict):
                    parsed.items.append(Rejected({"non_field_errors": ["a span is a JSON object"]}))
                    continue
                status: dict[str, Any] = span["status"] if isinstance(span.get("status"), dict) else {}
                _add(
                    parsed,
                    span_to_native(
                        trace_id=_hex_id(span.get("traceId")),
                        span_id=_hex_id(span.get("spanId")),
                        start_ns=_int(span.get("startTimeUnixNano")),
                        end_ns=_int(span.get("endTimeUnixNano")),
                        status_code=_int(status.get("code")),
                        attributes=_attributes_json(span.get("attributes")),
                    ),
                )
    return parsed


def _add(parsed: ParsedBody, native: dict[str, Any] | None) -> None:
    if native is None:
        parsed.ignored += 1
    else:
        parsed.items.append(native)


def parse_otlp(body: bytes, *, is_json: bool) -> ParsedBody:
    return _parse_json(body) if is_json else _parse_protobuf(body)

"""LiteLLM proxy ``generic_api`` callback payloads (``json_array``, ``ndjson`` or ``single``).

Mapping (``api.md``): litellm_call_id → request_id, startTime → timestamp,
custom_llm_provider / model → provider / model, end_user → customer, metadata team and
key hash → team / virtual_key, prompt/completion tokens with cached tokens from the usage
object, response_cost → cost, failures → their error code. Only these fields are read:
the payload's ``messages`` and ``response`` (prompt and answer text) are never copied.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from ingest.formats import ParsedBody, Rejected
from ingest.formats.native import parse_json_or_ndjson

OPERATIONS = {
    "completion": "chat",
    "acompletion": "chat",
    "text_completion": "completion",
    "atext_completion": "completion",
    "embedding": "embedding",
    "aembedding": "embedding",
    "image_generation": "image",
    "aimage_generation": "image",
    "transcription": "audio",
    "atranscription": "audio",
    "speech": "audio",
    "aspeech": "audio",
    "rerank": "rerank",
    "arerank": "rerank",
}


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _number(value: Any) -> float | None:
    """A finite epoch-seconds-sized number, else None."""
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and abs(value) < 1e11:
        return float(value)
    return None


def _tokens(value: Any) -> int:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and 0 < value < 1e13:
        return int(value)
    return 0


def _status(payload: dict[str, Any]) -> int:
    if payload.get("status") == "success":
        return 200
    code = str(_dict(payload.get("error_information")).get("error_code") or "")
    return int(code) if len(code) == 3 and code.isascii() and code.isdigit() and 100 <= int(code) <= 599 else 500


def _tags(request_tags: Any) -> dict[str, Any]:
    """``["stage:caption", "customer:acme"]`` → ``{"stage": "caption", …}``; the proxy's
    own ``User-Agent: …`` tags are dropped."""
    tags: dict[str, Any] = {}
    for tag in request_tags if isinstance(request_tags, list) else []:
        if not isinstance(tag, str) or tag.startswith("User-Agent:"):
            continue
        key, _, value = tag.partition(":")
        tags[key.strip()[:100]] = value.strip()[:500] if value else True
    return dict(list(tags.items())[:50])


def to_native(payload: dict[str, Any]) -> dict[str, Any]:
    metadata = _dict(payload.get("metadata"))
    usage = _dict(metadata.get("usage_object"))
    details = _dict(usage.get("prompt_tokens_details"))
    provider = payload.get("custom_llm_provider")
    model = payload.get("model")
    if isinstance(model, str) and "/" in model:
        prefix, _, rest = model.partition("/")
        provider = provider or prefix
        model = rest if prefix == provider else model
    status = _status(payload)
    call_id = payload.get("litellm_call_id")
    # A failure and the fallback that answered it share one litellm_call_id.
    request_id = call_id if status < 400 or not isinstance(call_id, str) else f"{call_id}:failed:{model}"
    start, end = _number(payload.get("startTime")), _number(payload.get("endTime"))
    first_token = _number(payload.get("completionStartTime"))
    prompt = _tokens(payload.get("prompt_tokens")) or _tokens(usage.get("prompt_tokens"))
    cached = _tokens(details.get("cached_tokens")) or _tokens(usage.get("cache_read_input_tokens"))
    cache_write = _tokens(usage.get("cache_creation_input_tokens")) or _tokens(details.get("cache_creation_tokens"))
    headers = _dict(metadata.get("requester_custom_headers"))
    hidden = _dict(payload.get("hidden_params"))
    extra_headers = _dict(hidden.get("additional_headers"))
    native: dict[str, Any] = {
        "request_id": request_id,
        "timestamp": datetime.fromtimestamp(start, UTC).isoformat() if start is not None else None,
        "provider": provider,
        "model": model,
        "customer": payload.get("end_user") or metadata.get("user_api_key_end_user_id") or None,
        "team": metadata.get("user_api_key_team_alias") or metadata.get("user_api_key_team_id") or None,
        "virtual_key": metadata.get("user_api_key_hash") or metadata.get("user_api_key_alias") or None,
        "operation": OPERATIONS.get(str(payload.get("call_type")), "other"),
        "input_tokens": max(prompt, cached + cache_write),
        "output_tokens": _tokens(payload.get("completion_tokens")) or _tokens(usage.get("completion_tokens")),
        "cached_input_tokens": cached,
        "cache_write_tokens": cache_write,
        "cost": payload.get("response_cost"),
        "latency_ms": round((end - start) * 1000) if start is not None and end is not None and end >= start else None,
        "ttft_ms": round((first_token - start) * 1000)
        if payload.get("stream") and start is not None and first_token is not None and first_token >= start
        else None,
        "status": status,
        "cache": "exact" if payload.get("cache_hit") is True else "none",
        "fallback": bool(_tokens(extra_headers.get("x-litellm-attempted-fallbacks"))),
        "pipeline_stage": headers.get("x-pipeline-stage") or None,
        "tags": _tags(payload.get("request_tags")),
    }
    trace = payload.get("trace_id")
    native["_trace_id"] = trace if isinstance(trace, str) else None
    return native


def parse_litellm(body: bytes, *, ndjson: bool) -> ParsedBody:
    items: list[dict[str, Any] | Rejected] = []
    for raw in parse_json_or_ndjson(body, ndjson=ndjson):
        if isinstance(raw, Rejected):
            items.append(raw)
        elif not isinstance(raw, dict):
            items.append(Rejected({"non_field_errors": ["a LiteLLM payload is a JSON object"]}))
        else:
            items.append(to_native(raw))
    _mark_fallbacks(items)
    return ParsedBody(items=items)


def _mark_fallbacks(items: list[dict[str, Any] | Rejected]) -> None:
    """A success that follows a failure with the same trace_id was served by a fallback."""
    failed_traces = {
        item["_trace_id"]
        for item in items
        if isinstance(item, dict) and item.get("_trace_id") and int(item.get("status") or 200) >= 400
    }
    for item in items:
        if isinstance(item, dict):
            trace = item.pop("_trace_id", None)
            if trace in failed_traces and int(item.get("status") or 200) < 400:
                item["fallback"] = True

"""Demo traffic: a few weeks of plausible gateway events for the embedded demo.

Generated deterministically (seeded) relative to now and sent through the real ingest
endpoints (native NDJSON and LiteLLM callback bodies) with a node token, exactly as a
gateway would, so the demo exercises parsing, validation, pricing and rollups.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from django.test import Client

# (provider, model, weight, mean input tokens, mean output tokens)
MODELS = [
    ("openai", "gpt-4o-mini", 40, 1200, 180),
    ("openai", "gpt-4.1", 8, 2500, 400),
    ("anthropic", "claude-haiku-4-5", 20, 900, 220),
    ("anthropic", "claude-sonnet-4-5", 8, 3000, 600),
    ("google", "gemini-2.5-flash", 15, 2000, 250),
    ("mistral", "mistral-small-latest", 6, 800, 150),
    ("openai", "text-embedding-3-small", 10, 400, 0),
]
BATCH_SIZE = 500  # what a gateway typically flushes at once
STAGES = ["caption", "prompt-rewrite", "rerank", "summarise", ""]


def _events(keys: list[str], *, days: int, per_day: int, seed: int) -> Iterator[dict[str, Any]]:
    rng = random.Random(seed)  # noqa: S311 - reproducible demo data, not secrets
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    start = now - timedelta(days=days)
    weights = [model[2] for model in MODELS]
    number = 0
    for day in range(days + 1):
        date = start + timedelta(days=day)
        weekday_factor = 0.45 if date.weekday() >= 5 else 1.0
        # One customer's retry loop in the last week: the incident finance asks about.
        incident = days - 6 <= day <= days - 4
        count = int(per_day * weekday_factor * rng.uniform(0.85, 1.15))
        for _ in range(count):
            at = date + timedelta(seconds=rng.randint(0, 86_399))
            if at >= now:
                continue
            key = rng.choice(keys)
            if incident and rng.random() < 0.35:
                key = keys[0]
            provider, model, _, mean_in, mean_out = rng.choices(MODELS, weights=weights)[0]
            failed = rng.random() < (0.12 if incident and key is keys[0] else 0.02)
            cached = (
                int(mean_in * rng.uniform(0.3, 0.8))
                if provider in ("openai", "anthropic") and rng.random() < 0.3
                else 0
            )
            input_tokens = max(cached, int(rng.gauss(mean_in, mean_in / 3)) if not failed else 0)
            number += 1
            event: dict[str, Any] = {
                "request_id": f"demo-{seed}-{number}",
                "timestamp": at.isoformat(),
                "provider": provider,
                "model": model,
                "virtual_key": key,
                "operation": "embedding" if "embedding" in model else "chat",
                "input_tokens": input_tokens,
                "output_tokens": 0
                if failed or "embedding" in model
                else max(1, int(rng.gauss(mean_out, mean_out / 3))),
                "cached_input_tokens": cached if not failed else 0,
                "latency_ms": int(rng.lognormvariate(6.2 if "embedding" not in model else 4.5, 0.5)),
                "status": rng.choice([429, 500, 503]) if failed else 200,
                "cache": "exact" if not failed and rng.random() < 0.04 else "none",
                "fallback": not failed and rng.random() < 0.01,
                "pipeline_stage": rng.choice(STAGES) or None,
                "end_user": f"user-{rng.randint(1, 400)}",
                "tags": {"env": "prod"},
            }
            if event["pipeline_stage"] == "caption" and not failed:
                event["units"] = {"captions": 1}  # the unit of work finance prices per
            yield event


def _litellm_payload(event: dict[str, Any]) -> dict[str, Any]:
    """The same event as a LiteLLM proxy's generic_api callback would send it."""
    started = datetime.fromisoformat(event["timestamp"]).timestamp()
    return {
        "litellm_call_id": event["request_id"],
        "trace_id": event["request_id"],
        "call_type": "aembedding" if event["operation"] == "embedding" else "acompletion",
        "status": "success" if event["status"] < 400 else "failure",
        "custom_llm_provider": event["provider"],
        "model": f"{event['provider']}/{event['model']}",
        "startTime": started,
        "endTime": started + event["latency_ms"] / 1000,
        "completionStartTime": started + event["latency_ms"] / 1000,
        "prompt_tokens": event["input_tokens"],
        "completion_tokens": event["output_tokens"],
        "cache_hit": event["cache"] == "exact",
        "error_information": {"error_code": str(event["status"])} if event["status"] >= 400 else {},
        "metadata": {
            "user_api_key_alias": event["virtual_key"],
            "usage_object": {"prompt_tokens_details": {"cached_tokens": event["cached_input_tokens"]}},
            "requester_custom_headers": {"x-pipeline-stage": event["pipeline_stage"]}
            if event["pipeline_stage"]
            else {},
        },
        "messages": [{"role": "user", "content": "(demo prompt, never stored)"}],
    }


def send_demo_traffic(*, ingest_token: str, keys: list[str], days: int = 21, per_day: int = 1500) -> int:
    """Post the demo events to the ingest endpoints; returns how many were accepted."""
    client = Client(HTTP_HOST="localhost", HTTP_AUTHORIZATION=f"Bearer {ingest_token}")
    accepted = 0
    batch: list[dict[str, Any]] = []

    def flush(number: int) -> int:
        if number % 2:  # every other batch arrives as LiteLLM callbacks
            body = json.dumps([_litellm_payload(event) for event in batch])
            response = client.post("/api/v1/ingest/litellm", body, content_type="application/json", secure=True)
        else:
            body = "\n".join(json.dumps(event) for event in batch)
            response = client.post("/api/v1/ingest/events", body, content_type="application/x-ndjson", secure=True)
        if response.status_code != 202:
            raise RuntimeError(f"demo ingest refused a batch: {response.status_code} {response.content[:300]!r}")
        return int(response.json()["accepted"])

    sent = 0
    for event in _events(keys, days=days, per_day=per_day, seed=7):
        batch.append(event)
        if len(batch) == BATCH_SIZE:
            accepted += flush(sent)
            sent, batch = sent + 1, []
    if batch:
        accepted += flush(sent)
    return accepted

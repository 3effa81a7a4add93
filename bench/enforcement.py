"""Time from a budget-crossing event to the key's desired state reading "blocked".

Starts gunicorn (web) and a Celery worker on a fresh PostgreSQL database and Redis,
exactly as production runs. For each run: a new customer with one key and a hard-capped
monthly budget of 100 USD; one event brings it to 99 USD (and is waited for); then the
crossing event (2 USD) is posted to the ingest endpoint and the clock runs until
``GET /api/v1/virtual-keys/{id}/`` says ``blocked`` (what the config push reads). Runs
idle and again under background ingest load, and prints p50/p95/max of each.

    .venv/bin/python bench/enforcement.py [--runs 30] [--background-events-per-second 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import BENCH_ENV, ROOT, server_url, setup_django

DATABASE = "bursar_bench_enforcement"
BROKER = os.environ.get("BENCH_BROKER", "redis://127.0.0.1:6379/4")
PORT = 8766
BASE = f"http://127.0.0.1:{PORT}"


def start_services(args: argparse.Namespace) -> list[subprocess.Popen[bytes]]:
    env = os.environ | BENCH_ENV | {"DATABASE_URL": server_url(DATABASE), "CELERY_BROKER_URL": BROKER}
    python = sys.executable
    web = subprocess.Popen(
        [python, "-m", "gunicorn", "bursar.wsgi:application", "--bind", f"127.0.0.1:{PORT}",
         "--workers", str(args.web_workers), "--log-level", "warning"],
        cwd=ROOT, env=env,
    )  # fmt: skip
    worker = subprocess.Popen(
        [python, "-m", "celery", "-A", "bursar", "worker", "--concurrency", str(args.worker_concurrency),
         "--loglevel", "warning", "--without-gossip", "--without-mingle", "--without-heartbeat"],
        cwd=ROOT, env=env,
    )  # fmt: skip
    return [web, worker]


def event(request_id: str, customer: str, key: str, cost: str) -> dict[str, Any]:
    return {
        "request_id": request_id,
        "timestamp": datetime.now(UTC).isoformat(),
        "provider": "openai",
        "model": "gpt-4o-mini",
        "customer": customer,
        "virtual_key": key,
        "input_tokens": 1200,
        "output_tokens": 300,
        "cost": cost,
        "latency_ms": 420,
        "status": 200,
    }


def wait_processed(client: Any, node_token: str, batch_id: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = client.get(
            f"/api/v1/ingest/batches/{batch_id}", headers={"Authorization": f"Bearer {node_token}"}
        ).json()["state"]
        if state == "processed":
            return
        time.sleep(0.01)
    sys.exit(f"batch {batch_id} was not processed within {timeout} s")


def one_run(client: Any, admin: dict[str, str], node: dict[str, str], n: int, tag: str) -> float:
    external_id = f"bench-{tag}-{n}"
    customer = client.post("/api/v1/customers/", json={"external_id": external_id, "name": external_id}, headers=admin)
    customer_id = customer.json()["id"]
    key = client.post("/api/v1/virtual-keys/", json={"name": f"key {n}", "customer": customer_id}, headers=admin).json()
    budget = client.post(
        "/api/v1/budgets/",
        json={"scope_type": "customer", "scope_id": customer_id, "amount": "100", "soft_thresholds": [80, 90]},
        headers=admin,
    )
    assert budget.status_code == 201, budget.text
    first = client.post(
        "/api/v1/ingest/events", json=[event(f"{external_id}-a", external_id, key["public_id"], "99")], headers=node
    )
    wait_processed(client, node["Authorization"].split()[1], first.json()["batch_id"])
    status_url = f"/api/v1/virtual-keys/{key['id']}/"
    assert client.get(status_url, headers=admin).json()["status"] == "active"

    started = time.perf_counter()
    crossing = client.post(
        "/api/v1/ingest/events", json=[event(f"{external_id}-b", external_id, key["public_id"], "2")], headers=node
    )
    assert crossing.status_code == 202, crossing.text
    while client.get(status_url, headers=admin).json()["status"] != "blocked":
        if time.perf_counter() - started > 60:
            sys.exit(f"key {key['public_id']} not blocked within 60 s")
        time.sleep(0.002)
    return time.perf_counter() - started


def background_load(node: dict[str, str], per_second: int, stop: threading.Event, sent: list[int]) -> None:
    """Other customers' traffic in batches of 500, paced to ``per_second``."""
    import httpx

    batch = 500
    n = 0
    with httpx.Client(base_url=BASE, timeout=60) as client:
        next_at = time.perf_counter()
        while not stop.is_set():
            body = [event(f"bg-{n + i}", f"bg-customer-{(n + i) % 50}", "", "0.001") for i in range(batch)]
            for item in body:
                item.pop("virtual_key")
            client.post(
                "/api/v1/ingest/events", content=json.dumps(body), headers=node | {"Content-Type": "application/json"}
            )
            n += batch
            sent[0] = n
            next_at += batch / per_second
            time.sleep(max(0.0, next_at - time.perf_counter()))


def summarise(label: str, seconds: list[float]) -> None:
    ms = sorted(s * 1000 for s in seconds)
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    print(
        f"{label:<40} runs={len(ms):<4} p50={statistics.median(ms):7.1f} ms  p95={p95:7.1f} ms  max={ms[-1]:7.1f} ms"
        f"  (target p95 < 1000 ms: {'met' if p95 < 1000 else 'MISSED'})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--background-events-per-second", type=int, default=2000)
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument("--worker-concurrency", type=int, default=2)
    args = parser.parse_args()

    setup_django(DATABASE, fresh=True)
    import httpx
    from django.utils import timezone

    from governance.actors import Actor
    from governance.services.api_tokens import create_api_token
    from governance.services.nodes import register_gateway_node

    actor = Actor.command("bench")
    admin_token = create_api_token(actor=actor, name="bench", role="admin", now=timezone.now()).secret
    node_token = register_gateway_node(actor=actor, name="bench-gw").ingest_token
    admin = {"Authorization": f"Bearer {admin_token}"}
    node = {"Authorization": f"Bearer {node_token}"}

    services = start_services(args)
    try:
        with httpx.Client(base_url=BASE, timeout=60) as client:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if client.get("/healthz").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    sys.exit("the web server did not start")
                time.sleep(0.2)
            one_run(client, admin, node, 0, "warmup")
            idle = [one_run(client, admin, node, n, "idle") for n in range(args.runs)]
            stop, sent = threading.Event(), [0]
            loader = threading.Thread(
                target=background_load, args=(node, args.background_events_per_second, stop, sent), daemon=True
            )
            loader.start()
            time.sleep(2)
            started, before = time.perf_counter(), sent[0]
            loaded = [one_run(client, admin, node, n, "loaded") for n in range(args.runs)]
            rate = (sent[0] - before) / (time.perf_counter() - started)
            stop.set()
            loader.join(timeout=30)
    finally:
        for process in services:
            process.send_signal(signal.SIGTERM)
        for process in services:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()

    print(
        f"crossing event -> key desired state 'blocked' "
        f"({args.web_workers} web, {args.worker_concurrency} worker processes)"
    )
    summarise("idle", idle)
    summarise(f"under background ingest ({rate:,.0f} events/s)", loaded)


if __name__ == "__main__":
    main()

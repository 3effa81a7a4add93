"""End-to-end ingest throughput vs. PostgreSQL's own COPY, on this machine, in one run.

Starts gunicorn (web) and a Celery worker (prefork) against a fresh PostgreSQL database
and Redis, sends realistic native events over HTTP in batches of 1,000 from several
concurrent clients, waits until every batch is processed (events stored, rolled up,
budgets charged), and prints events/s. Then COPYs the very rows the pipeline stored
into an identically indexed table and prints that rate (the physical limit) and the
ratio. Peak memory (VmHWM) of the web and worker processes is reported too.

    .venv/bin/python bench/ingest.py [--events 200000] [--clients 8] [--web-workers 2] [--worker-concurrency 2]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    BENCH_ENV,
    ROOT,
    cpu_seconds,
    descendants,
    machine_cpu_seconds,
    peak_rss_mb,
    server_url,
    setup_django,
)

DATABASE = "bursar_bench_ingest"
BROKER = os.environ.get("BENCH_BROKER", "redis://127.0.0.1:6379/3")
PORT = 8765
MODELS = [("openai", "gpt-4o-mini"), ("anthropic", "claude-haiku-4-5"), ("google", "gemini-2.5-flash"),
          ("openai", "gpt-4.1"), ("mistral", "mistral-small-latest")]  # fmt: skip


def make_batches(total: int, size: int, keys: list[str], customers: list[str], spread_hours: float) -> list[bytes]:
    rng = random.Random(1)
    span = spread_hours * 3600
    start = datetime.now(UTC) - timedelta(seconds=span)
    batches = []
    for first in range(0, total, size):
        events = []
        for n in range(first, min(first + size, total)):
            provider, model = rng.choice(MODELS)
            events.append({
                "request_id": f"bench-{n}",
                "timestamp": (start + timedelta(seconds=n * span / total)).isoformat(),
                "provider": provider,
                "model": model,
                "virtual_key": rng.choice(keys),
                "customer": rng.choice(customers),
                "input_tokens": rng.randint(100, 4000),
                "output_tokens": rng.randint(10, 800),
                "cached_input_tokens": 0,
                "latency_ms": rng.randint(80, 4000),
                "status": 200 if rng.random() > 0.02 else 500,
                "pipeline_stage": rng.choice(["caption", "rewrite", "rerank", ""]) or None,
                "tags": {"sku": f"A-{rng.randint(1, 50)}"},
            })  # fmt: skip
        batches.append(json.dumps(events).encode())
    return batches


def start_services(args: argparse.Namespace) -> tuple[subprocess.Popen[bytes], subprocess.Popen[bytes]]:
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
    return web, worker


def send_all(batches: list[bytes], token: str, clients: int) -> list[str]:
    import httpx

    queue = list(enumerate(batches))
    lock = threading.Lock()
    batch_ids: list[str] = []
    errors: list[str] = []

    def run() -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{PORT}", timeout=60) as client:
            while True:
                with lock:
                    if not queue:
                        return
                    _, body = queue.pop()
                response = client.post(
                    "/api/v1/ingest/events",
                    content=body,
                    headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
                )
                with lock:
                    if response.status_code == 202:
                        batch_ids.append(response.json()["batch_id"])
                    else:
                        errors.append(f"{response.status_code} {response.text[:200]}")

    threads = [threading.Thread(target=run) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        sys.exit(f"{len(errors)} batches refused, e.g. {errors[0]}")
    return batch_ids


def wait_until_processed(expected: int, timeout: float = 900) -> None:
    from ingest.models import IngestBatch

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if IngestBatch.objects.filter(state="processed").count() >= expected:
            return
        time.sleep(0.05)
    sys.exit("timed out waiting for the workers")


def copy_rate() -> tuple[int, float]:
    """COPY the stored events into an identically indexed table; (rows, rows per second)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS bench_copy_events")
        cursor.execute("CREATE TABLE bench_copy_events (LIKE billing_usageevent INCLUDING ALL)")
        raw = cursor.connection
        buffer = io.BytesIO()
        with raw.cursor().copy("COPY billing_usageevent TO STDOUT") as copy:
            for data in copy:
                buffer.write(data)
        payload = buffer.getvalue()
        started = time.perf_counter()
        with raw.cursor().copy("COPY bench_copy_events FROM STDIN") as copy:
            copy.write(payload)
        raw.commit() if not raw.autocommit else None
        elapsed = time.perf_counter() - started
        cursor.execute("SELECT count(*) FROM bench_copy_events")
        rows = cursor.fetchone()[0]
        cursor.execute("DROP TABLE bench_copy_events")
    return rows, rows / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument("--worker-concurrency", type=int, default=2)
    parser.add_argument(
        "--spread-hours",
        type=float,
        default=1.0,
        help="event timestamps cover this many past hours (1: live traffic; 168: a week of backfill)",
    )
    args = parser.parse_args()

    setup_django(DATABASE, fresh=True)
    import redis

    redis.Redis.from_url(BROKER).flushdb()
    from governance.actors import Actor
    from governance.services.nodes import register_gateway_node
    from governance.services.organization import create_customer, create_team
    from governance.services.virtual_keys import issue_virtual_key

    actor = Actor.command("bench")
    customers = [create_customer(actor=actor, external_id=f"customer_{n}", name=f"Customer {n}") for n in range(100)]
    keys = []
    for n in range(300):
        team = create_team(actor=actor, slug=f"team-{n}", name=f"Team {n}", customer=customers[n % 100])
        keys.append(issue_virtual_key(actor=actor, name=f"key {n}", team=team, now=datetime.now(UTC)).key.public_id)
    token = register_gateway_node(actor=actor, name="bench-gw").ingest_token

    print(f"generating {args.events:,} events in batches of {args.batch_size:,} …", flush=True)
    batches = make_batches(args.events, args.batch_size, keys, [c.external_id for c in customers], args.spread_hours)
    web, worker = start_services(args)
    try:
        import httpx

        for _ in range(100):
            try:
                httpx.get(f"http://127.0.0.1:{PORT}/healthz", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        time.sleep(2)  # let the Celery worker connect
        print(f"sending with {args.clients} clients to {args.web_workers} gunicorn workers; "
              f"{args.worker_concurrency} Celery processes …", flush=True)  # fmt: skip
        web_pids = [web.pid, *descendants(web.pid)]
        worker_pids = [worker.pid, *descendants(worker.pid)]
        cpu_before = (
            sum(cpu_seconds(pid) for pid in web_pids),
            sum(cpu_seconds(pid) for pid in worker_pids),
            machine_cpu_seconds(),
        )
        started = time.perf_counter()
        batch_ids = send_all(batches, token, args.clients)
        accepted_at = time.perf_counter() - started
        wait_until_processed(len(batch_ids))
        elapsed = time.perf_counter() - started
        web_cpu = sum(cpu_seconds(pid) for pid in web_pids) - cpu_before[0]
        worker_cpu = sum(cpu_seconds(pid) for pid in worker_pids) - cpu_before[1]
        machine_cpu = machine_cpu_seconds() - cpu_before[2]
        web_peak = max(peak_rss_mb(pid) for pid in web_pids)
        worker_peak = max(peak_rss_mb(pid) for pid in worker_pids)
    finally:
        for process in (web, worker):
            process.send_signal(signal.SIGTERM)
        for process in (web, worker):
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()

    from billing.models import UsageEvent, UsageRollup

    stored = UsageEvent.objects.count()
    if stored != args.events:
        sys.exit(f"stored {stored} events, expected {args.events}")
    rows, copy_per_second = copy_rate()
    end_to_end = args.events / elapsed
    print()
    rollups = UsageRollup.objects.count()
    print(f"events                      {args.events:>12,}  (stored: {stored:,}; rollup rows: {rollups:,}; "
          f"timestamps over {args.spread_hours:g} h; 300 keys, 100 customers, 5 models, 4 stages)")  # fmt: skip
    print(f"accepted over HTTP in       {accepted_at:>12.2f} s   ({args.events / accepted_at:,.0f} events/s)")
    print(f"end to end (stored+rolled)  {elapsed:>12.2f} s   ({end_to_end:,.0f} events/s)")
    print(f"raw COPY, same rows/indexes {rows / copy_per_second:>12.2f} s   ({copy_per_second:,.0f} events/s)")
    print(f"ratio end-to-end / COPY     {end_to_end / copy_per_second:>12.2f}")
    per_event = 1e6 / args.events
    print(
        f"CPU per event               web {web_cpu * per_event:.0f} µs, worker {worker_cpu * per_event:.0f} µs, "
        f"rest of machine (PostgreSQL, Redis, clients) {(machine_cpu - web_cpu - worker_cpu) * per_event:.0f} µs; "
        f"{machine_cpu / elapsed:.2f} of {os.cpu_count()} cores busy"
    )
    print(f"peak RSS web process        {web_peak:>12.0f} MB (largest of {len(web_pids)} gunicorn processes)")
    print(f"peak RSS worker process     {worker_peak:>12.0f} MB (largest of {len(worker_pids)} celery processes)")


if __name__ == "__main__":
    main()

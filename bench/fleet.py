"""Time from a budget-crossing event until EVERY gateway node has applied the block.

Starts gunicorn, a Celery worker and Celery beat on a fresh PostgreSQL database and
Redis, and 10 fake gateway nodes on loopback speaking the generic protocol (real HTTP
servers that check the signature and record what they apply: ``tests/fakes/generic.py``).
For each run: a new customer with one key and a hard-capped budget of 100 USD, one event
to 99 USD, then the crossing event; the clock runs from posting it until all nodes hold
a revision with the key blocked. Prints p50/p95/max, and the money a client retrying at
``--requests-per-second`` would have spent past the cap in that time. Then the outage
case: 2 nodes down for ``--outage-seconds``; the others get the block, and the two
converge when they come back (time from their return to holding the latest revision).

    .venv/bin/python bench/fleet.py [--runs 30] [--nodes 10] [--outage-seconds 30]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import BENCH_ENV, ROOT, server_url, setup_django

DATABASE = "bursar_bench_fleet"
BROKER = os.environ.get("BENCH_BROKER", "redis://127.0.0.1:6379/5")
PORT = 8767
BASE = f"http://127.0.0.1:{PORT}"


def start_services(args: argparse.Namespace, schedule: str) -> list[subprocess.Popen[bytes]]:
    env = os.environ | BENCH_ENV | {"DATABASE_URL": server_url(DATABASE), "CELERY_BROKER_URL": BROKER}
    python = sys.executable
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    return [
        subprocess.Popen(
            [python, "-m", "gunicorn", "bursar.wsgi:application", "--bind", f"127.0.0.1:{PORT}",
             "--workers", str(args.web_workers), "--log-level", "warning"],
            cwd=ROOT, env=env,
        ),
        subprocess.Popen(
            [python, "-m", "celery", "-A", "bursar", "worker", "--concurrency", str(args.worker_concurrency),
             "--loglevel", "warning", "--without-gossip", "--without-mingle", "--without-heartbeat"],
            cwd=ROOT, env=env, **quiet,
        ),
        subprocess.Popen(
            [python, "-m", "celery", "-A", "bursar", "beat", "--schedule", schedule, "--loglevel", "warning"],
            cwd=ROOT, env=env, **quiet,
        ),
    ]  # fmt: skip


def event(request_id: str, customer: str, key: str, cost: str) -> dict[str, Any]:
    return {
        "request_id": request_id,
        "timestamp": datetime.now(UTC).isoformat(),
        "provider": "openai",
        "model": "gpt-4o",
        "customer": customer,
        "virtual_key": key,
        "input_tokens": 1500,
        "output_tokens": 400,
        "cost": cost,
        "latency_ms": 900,
        "status": 200,
    }


def wait(condition: Any, timeout: float, what: str) -> float:
    started = time.perf_counter()
    while not condition():
        if time.perf_counter() - started > timeout:
            sys.exit(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.002)
    return time.perf_counter() - started


def holds_key(fake: Any, public_id: str) -> bool:
    return bool(fake.holds(public_id))


def one_run(client: Any, admin: dict[str, str], node: dict[str, str], fakes: list[Any], tag: str) -> float:
    """Seconds from posting the crossing event until every fake in ``fakes`` applied it."""
    external_id = f"fleet-{tag}"
    customer = client.post("/api/v1/customers/", json={"external_id": external_id, "name": external_id}, headers=admin)
    customer_id = customer.json()["id"]
    key = client.post("/api/v1/virtual-keys/", json={"name": tag, "customer": customer_id}, headers=admin).json()
    budget = client.post(
        "/api/v1/budgets/",
        json={"scope_type": "customer", "scope_id": customer_id, "amount": "100", "soft_thresholds": []},
        headers=admin,
    )
    assert budget.status_code == 201, budget.text
    first = client.post(
        "/api/v1/ingest/events", json=[event(f"{tag}-a", external_id, key["public_id"], "99")], headers=node
    )
    assert first.status_code == 202, first.text
    public_id = key["public_id"]
    wait(lambda: all(holds_key(f, public_id) and not f.blocked(public_id) for f in fakes), 60, "the key on every node")

    started = time.perf_counter()
    crossing = client.post("/api/v1/ingest/events", json=[event(f"{tag}-b", external_id, public_id, "2")], headers=node)
    assert crossing.status_code == 202, crossing.text
    wait(lambda: all(f.blocked(public_id) for f in fakes), 60, "the block on every node")
    return time.perf_counter() - started


def _other_keys(count: int) -> None:
    """``count`` live keys over 1,000 customers and teams, inserted directly (fast)."""
    from governance.models import Customer, Team, VirtualKey

    customers = Customer.objects.bulk_create(Customer(external_id=f"other-{n}", name=f"Other {n}") for n in range(1000))
    teams = Team.objects.bulk_create(
        Team(slug=f"other-{n}", name=f"Other {n}", customer=c) for n, c in enumerate(customers)
    )
    VirtualKey.objects.bulk_create(
        (
            VirtualKey(public_id=f"vk_other{n:07d}", name=f"other {n}", team=teams[n % 1000],
                       customer=customers[n % 1000], secret_prefix=f"vk_{n:08d}", secret_sha256=f"{n:064x}",
                       allowed_models=["openai/*"], requests_per_minute=60)
            for n in range(count)
        ),
        batch_size=5000,
    )  # fmt: skip


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--nodes", type=int, default=10)
    parser.add_argument("--down", type=int, default=2, help="nodes taken down in the outage case")
    parser.add_argument("--outage-seconds", type=float, default=30.0)
    parser.add_argument("--requests-per-second", type=float, default=200.0, help="a client's retry loop")
    parser.add_argument("--request-cost", type=Decimal, default=Decimal("0.02"), help="USD per request")
    parser.add_argument(
        "--keys", type=int, default=0, help="other live keys in the desired state (every revision renders them all)"
    )
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument("--worker-concurrency", type=int, default=2)
    args = parser.parse_args()

    setup_django(DATABASE, fresh=True)
    import httpx
    from django.utils import timezone

    from governance.actors import Actor
    from governance.services.api_tokens import create_api_token
    from governance.services.nodes import register_gateway_node
    from tests.fakes.generic import GenericGateway

    if args.keys:
        _other_keys(args.keys)
    actor = Actor.command("bench")
    admin_token = create_api_token(actor=actor, name="bench", role="admin", now=timezone.now()).secret
    admin = {"Authorization": f"Bearer {admin_token}"}
    sender = {"Authorization": f"Bearer {register_gateway_node(actor=actor, name='sender').ingest_token}"}
    fakes = [GenericGateway() for _ in range(args.nodes)]
    schedule = tempfile.mktemp(prefix="bursar-bench-beat-")  # noqa: S306 - celery beat creates the file
    services = start_services(args, schedule)
    try:
        with httpx.Client(base_url=BASE, timeout=60) as client:
            wait(lambda: _healthy(client), 60, "the web server")
            for n, fake in enumerate(fakes):
                created = client.post(
                    "/api/v1/gateway-nodes/",
                    json={"name": f"gw-{n}", "kind": "generic", "base_url": fake.url},
                    headers=admin,
                )
                assert created.status_code == 201, created.text
                fake.ingest_token = created.json()["ingest_token"]
            one_run(client, admin, sender, fakes, "warmup")
            healthy = [one_run(client, admin, sender, fakes, f"run-{n}") for n in range(args.runs)]

            outages = []
            for n in range(max(1, args.runs // 10)):
                down, up = fakes[: args.down], fakes[args.down :]
                for fake in down:
                    fake.stop()
                went_down = time.perf_counter()
                blocked_up = one_run(client, admin, sender, up, f"outage-{n}")
                time.sleep(max(0.0, args.outage_seconds - (time.perf_counter() - went_down)))
                for fake in down:
                    fake.start()
                back = time.perf_counter()
                latest = client.get("/api/v1/config/latest/", headers=admin).json()["version"]
                converged = wait(
                    lambda down=down, latest=latest: all((f.version or 0) >= latest for f in down),
                    120,
                    "the returning nodes",
                )
                outages.append((blocked_up, converged, time.perf_counter() - back))
    finally:
        for process in services:
            process.send_signal(signal.SIGTERM)
        for process in services:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        for fake in fakes:
            fake.close()
        Path(schedule).unlink(missing_ok=True)

    ms = [s * 1000 for s in healthy]
    p50, p95, worst = statistics.median(ms), percentile(ms, 0.95), max(ms)
    print(f"crossing event -> block applied on all {args.nodes} nodes ({args.runs} runs; {args.keys:,} other keys; "
          f"{args.web_workers} web, {args.worker_concurrency} worker processes)")  # fmt: skip
    print(f"  p50 {p50:7.1f} ms   p95 {p95:7.1f} ms   max {worst:7.1f} ms   (target p95 < 2000 ms: "
          f"{'met' if p95 < 2000 else 'MISSED'})")  # fmt: skip
    for label, value in (("p50", p50), ("p95", p95), ("max", worst)):
        leaked = args.request_cost * Decimal(str(args.requests_per_second)) * Decimal(str(value / 1000))
        print(f"  spent past the cap at {args.requests_per_second:.0f} req/s x {args.request_cost} USD ({label}): "
              f"{leaked.quantize(Decimal('0.01'))} USD")  # fmt: skip
    for n, (blocked_up, converged, _) in enumerate(outages):
        print(f"outage {n}: {args.down} of {args.nodes} nodes down {args.outage_seconds:.0f} s; the other "
              f"{args.nodes - args.down} blocked in {blocked_up * 1000:.0f} ms; the {args.down} returning nodes "
              f"held the latest revision {converged:.1f} s after coming back")  # fmt: skip


def _healthy(client: Any) -> bool:
    import httpx

    try:
        return bool(client.get("/healthz").status_code == 200)
    except httpx.HTTPError:
        return False


if __name__ == "__main__":
    main()

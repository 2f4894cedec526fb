"""A layoff against SaaS-like apps: each app at its own rate limit, none stuck.

    python bench/layoff.py                      # N=150; apps at 600, 600 and 180 requests/min
    python bench/layoff.py --people 1000 --rates 600,600,180
    python bench/layoff.py --workers 2 --db postgres   # scale-out: PostgreSQL, API, 2 workers

Locally on loopback: the Temporal dev server, one scim2-server per app behind a SaaS-like front
(bench/saas_front.py: 150 ms ± 50 ms per request, a token bucket at the app's rate answering
429 with Retry-After), and ``offboard dev`` with each app's ``rate_limit_per_minute`` in the
catalog; or, with ``--workers N`` or ``--db postgres``, the production shape (bench/scaleout.py:
``offboard migrate``, ``offboard api`` and N ``offboard worker`` processes on one app DB). N
signed terminations at once, every person in a group. Per app it prints requests, requests/min
achieved vs the limit, 429s, requests sent after a 429 had reached us but before its
Retry-After had passed ("early"; requests already on their way when the 429 went out are
counted apart, as "in flight"), and the app's finish vs its own physical limit (its requests ÷
its rate); overall, the finish vs the slowest app's limit, each worker's share of the
activities and workflow tasks, and how many activities needed more than one attempt (a step
that timed out waiting for its turn would show here). Figures only: nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.burst import post_webhook  # noqa: E402
from bench.procs import Proc, catalog_app, spawn, spawn_offboard  # noqa: E402
from bench.scaleout import Deployment, Shares, worker_shares  # noqa: E402
from devstack.demo_data import demo_users  # noqa: E402
from devstack.ports import free_port  # noqa: E402
from devstack.temporal_server import TemporalDevServer  # noqa: E402

FIRST_USER = 100


async def layoff(api: str, token: str, n: int) -> float:
    users = demo_users(FIRST_USER + n)[FIRST_USER:]
    async with httpx.AsyncClient(
        base_url=api, timeout=120, headers={"Authorization": f"Bearer {token}"}
    ) as http:
        for _ in range(600):  # the API may start a moment after the dev stack says so
            try:
                if (await http.get("/healthz")).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
        started = time.time()
        gate = asyncio.Semaphore(32)

        async def send(i: int) -> None:
            async with gate:
                status, _ = await post_webhook(http, FIRST_USER + i, users[i].user_name)
                assert status == 202, status

        await asyncio.gather(*(send(i) for i in range(n)))
        accepted = time.time() - started
        print(f"{n} webhooks accepted in {accepted:.1f} s", flush=True)
        while True:
            await asyncio.sleep(2)
            done = await http.get(
                "/api/v1/offboardings", params={"status": "completed", "limit": 1, "offset": n - 1}
            )
            if done.json():
                return started
            failed = await http.get("/api/v1/offboardings", params={"status": "waiting_human"})
            if failed.json():
                print(f"  {len(failed.json())} runs waiting on a person", flush=True)


def print_shares(shares: Shares, names: dict[str, str]) -> None:
    """Each worker process's share of the activities (per app queue) and workflow tasks;
    ``names`` maps a pid to a name (Temporal's identity of a worker is ``<pid>@<host>``)."""
    total = sum(shares.activities.values())
    print(
        f"  work per worker ({total} activities, {sum(shares.workflow_tasks.values())} wf tasks):"
    )
    for identity in sorted({i for i, _ in shares.activities} | set(shares.workflow_tasks)):
        mine = {q: n for (i, q), n in shares.activities.items() if i == identity}
        per_app = ", ".join(
            f"{q.rpartition('.')[2] if '.' in q else 'main'} {n}" for q, n in sorted(mine.items())
        )
        print(
            f"    {names.get(identity.split('@')[0], identity)}: {sum(mine.values())} activities "
            f"({sum(mine.values()) / max(total, 1):.0%}: {per_app}), "
            f"{shares.workflow_tasks[identity]} workflow tasks"
        )


def interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--people", type=int, default=150)
    parser.add_argument("--rates", default="600,600,180", help="requests/min per app")
    parser.add_argument("--workers", type=int, default=1, help="worker processes")
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, interrupt)  # stop every server on SIGTERM too
    rates = [float(r) for r in args.rates.split(",")]
    workdir = Path(tempfile.mkdtemp(prefix="offboard-layoff-"))
    temporal = TemporalDevServer(workdir / "temporal.db").start()
    procs: list[Proc] = []
    deployment: Deployment | None = None
    try:
        urls = []
        for i, rate in enumerate(rates):
            port = free_port()
            size = str(FIRST_USER + args.people + 50)
            cmd = [sys.executable, str(ROOT / "bench/scim_app.py"), str(port), size, str(rate)]
            procs.append(spawn(cmd, workdir, f"scim{i}"))
            urls.append(f"http://127.0.0.1:{port}/v2")
        catalog = "apps:" + "".join(
            catalog_app(i, u, concurrency=8, rate=r)
            for i, (u, r) in enumerate(zip(urls, rates, strict=True))
        )
        (workdir / "apps.yaml").write_text(catalog)
        port = free_port()
        names = {}
        if args.workers == 1 and args.db == "sqlite":
            procs.append(spawn_offboard(workdir, temporal.address, port))
            token = (workdir / "data/admin-token").read_text().strip()
            names[str(procs[-1].popen.pid)] = "offboard dev"
        else:
            queues = ["offboard", *(f"offboard.app{i}" for i in range(len(rates)))]
            deployment = Deployment.start(
                workdir, temporal.address, port, queues, args.db, args.workers
            )
            token, names = deployment.token, deployment.workers
        print(f"{args.workers} worker process(es), app DB {args.db}; logs in {workdir}", flush=True)
        started = asyncio.run(layoff(f"http://127.0.0.1:{port}", token, args.people))
        finished = time.time() - started
        limits = []
        print(f"\nN = {args.people}: every run completed in {finished:.0f} s")
        for i, (url, rate) in enumerate(zip(urls, rates, strict=True)):
            stats = httpx.get(url + "/_stats").json()
            physical = stats["requests"] / (rate / 60)
            limits.append(physical)
            took = stats["last"] - started
            achieved = stats["requests"] / max(stats["last"] - stats["first"], 1e-9) * 60
            print(
                f"  app{i} ({rate:.0f}/min): {stats['requests']:.0f} requests "
                f"({stats['requests'] / args.people:.1f}/person), {achieved:.0f}/min achieved, "
                f"{stats['throttled']:.0f} x 429, {stats['early']:.0f} early after a 429 "
                f"({stats['in_flight']:.0f} in flight); "
                f"finished {took:.0f} s vs its limit {physical:.0f} s = {took / physical:.2f}x"
            )
        slowest = max(limits)
        print(
            f"  overall {finished:.0f} s vs the slowest app's limit {slowest:.0f} s "
            f"= {finished / slowest:.2f}x"
        )
        shares = asyncio.run(worker_shares(temporal.address))
        print_shares(shares, names)
        print(f"  activities that needed more than one attempt: {shares.retried}")
    finally:
        if deployment is not None:
            deployment.stop()
        for proc in reversed(procs):
            proc.stop()
        temporal.stop()


if __name__ == "__main__":
    main()

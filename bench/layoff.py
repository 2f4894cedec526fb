"""A layoff against SaaS-like apps: each app at its own rate limit, none stuck.

    python bench/layoff.py                      # N=150; apps at 600, 600 and 180 requests/min
    python bench/layoff.py --people 1000 --rates 600,600,180

Locally on loopback: the Temporal dev server, one scim2-server per app behind a SaaS-like front
(bench/saas_front.py: 150 ms ± 50 ms per request, a token bucket at the app's rate answering
429 with Retry-After), and ``offboard dev`` with each app's ``rate_limit_per_minute`` in the
catalog. N signed terminations at once, every person in a group. Per app it prints requests,
requests/min achieved vs the limit, 429s, requests sent before an announced Retry-After had
passed, and the app's finish vs its own physical limit (its requests ÷ its rate); overall, the
finish vs the slowest app's limit, and how many steps needed more than one attempt (a step
that timed out waiting for its turn would show here). Figures only: nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.burst import post_webhook  # noqa: E402
from bench.procs import CATALOG_APP, Proc, spawn, spawn_offboard  # noqa: E402
from devstack.demo_data import demo_users  # noqa: E402
from devstack.ports import free_port  # noqa: E402
from devstack.temporal_server import TemporalDevServer  # noqa: E402

FIRST_USER = 100


async def retried_steps(address: str, n: int) -> int:
    """Activities of the layoff's runs that needed more than one attempt."""
    from temporalio.api.enums.v1 import EventType
    from temporalio.client import Client

    client = await Client.connect(address)
    retried = 0
    for i in range(n):
        handle = client.get_workflow_handle(f"offboard-B{FIRST_USER + i:06d}")
        async for event in handle.fetch_history_events():
            if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
                retried += event.activity_task_started_event_attributes.attempt > 1
    return retried


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--people", type=int, default=150)
    parser.add_argument("--rates", default="600,600,180", help="requests/min per app")
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",")]
    workdir = Path(tempfile.mkdtemp(prefix="offboard-layoff-"))
    temporal = TemporalDevServer(workdir / "temporal.db").start()
    procs: list[Proc] = []
    try:
        urls = []
        for i, rate in enumerate(rates):
            port = free_port()
            size = str(FIRST_USER + args.people + 50)
            cmd = [sys.executable, str(ROOT / "bench/scim_app.py"), str(port), size, str(rate)]
            procs.append(spawn(cmd, workdir, f"scim{i}"))
            urls.append(f"http://127.0.0.1:{port}/v2")
        catalog = "apps:" + "".join(
            CATALOG_APP.format(i=i, url=u, rate=int(r), concurrency=8)
            for i, (u, r) in enumerate(zip(urls, rates, strict=True))
        )
        (workdir / "apps.yaml").write_text(catalog)
        port = free_port()
        procs.append(spawn_offboard(workdir, temporal.address, port))
        token = (workdir / "data/admin-token").read_text().strip()
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
                f"{stats['throttled']:.0f} x 429, {stats['early']:.0f} early after a 429; "
                f"finished {took:.0f} s vs its limit {physical:.0f} s = {took / physical:.2f}x"
            )
        slowest = max(limits)
        print(
            f"  overall {finished:.0f} s vs the slowest app's limit {slowest:.0f} s "
            f"= {finished / slowest:.2f}x"
        )
        retried = asyncio.run(retried_steps(temporal.address, args.people))
        print(f"  activities that needed more than one attempt: {retried}")
    finally:
        for proc in reversed(procs):
            proc.stop()
        temporal.stop()


if __name__ == "__main__":
    main()

"""HR event → access revoked and verified: burst and steady latency against a same-run baseline.

    python bench/burst.py                 # N=200 and N=1000, then 5/s for 60 s
    python bench/burst.py --sizes 200 --steady-seconds 20

Everything runs locally on loopback: the Temporal dev server, 5 scim2-servers (one process
each), ``offboard dev`` (API + worker in one process, as users run it) and the baseline worker
(bench/baseline.py: one activity per app making the same requests). Per burst it prints people/s
for both and their ratio, the time to accept every webhook and each webhook's accept latency
(POST sent -> 202; p50, p99, max), CPU per person by process, peak RSS and the largest history;
then the steady latency. Figures are printed, never asserted: this is a measurement, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from api.signature import sign  # noqa: E402
from bench.baseline import deprovision_all  # noqa: E402
from bench.proc_stats import cpu_seconds, rss_kib  # noqa: E402
from bench.procs import SECRET, Proc, catalog_app, spawn, spawn_baseline, spawn_offboard  # noqa: E402
from devstack.demo_data import demo_users  # noqa: E402
from devstack.ports import free_port  # noqa: E402
from devstack.temporal_server import TemporalDevServer  # noqa: E402

APPS = 5
FIRST_USER = 100  # past the hand-crafted demo users (e.g. the filter-injection one)


@dataclass
class Stack:
    workdir: Path
    temporal: TemporalDevServer
    scim_urls: list[str]
    procs: list[Proc] = field(default_factory=list)
    api: str = ""
    token: str = ""
    offboard: Proc | None = None
    baseline_queue: str = ""

    def cpu(self) -> dict[str, float]:
        """CPU seconds so far by component: where a person's cost lands on this machine."""
        assert self.temporal.pid is not None
        totals = {
            "temporal": cpu_seconds(self.temporal.pid),
            "scim apps": 0.0,
            "bench client": time.process_time(),
        }
        for proc in self.procs:
            name = proc.log.stem
            key = "scim apps" if name.startswith("scim") else name
            totals[key] = totals.get(key, 0.0) + cpu_seconds(proc.popen.pid)
        return totals

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()
        self.temporal.stop()


def start_stack(people: int) -> Stack:
    workdir = Path(tempfile.mkdtemp(prefix="offboard-bench-"))
    temporal = TemporalDevServer(workdir / "temporal.db").start()
    stack = Stack(workdir, temporal, [])
    for i in range(APPS):
        port = free_port()
        stack.procs.append(
            spawn(
                [sys.executable, str(ROOT / "bench/scim_app.py"), str(port), str(people)],
                workdir,
                f"scim{i}",
            )
        )
        stack.scim_urls.append(f"http://127.0.0.1:{port}/v2")
    catalog = "apps:" + "".join(
        catalog_app(i, url, concurrency=32) for i, url in enumerate(stack.scim_urls)
    )
    (workdir / "apps.yaml").write_text(catalog)
    port = free_port()
    stack.offboard = spawn_offboard(workdir, temporal.address, port)
    stack.procs.append(stack.offboard)
    stack.api = f"http://127.0.0.1:{port}"
    stack.token = (workdir / "data/admin-token").read_text().strip()
    stack.baseline_queue = f"baseline-{uuid.uuid4().hex[:8]}"
    stack.procs.append(
        spawn_baseline(workdir, temporal.address, stack.baseline_queue, stack.scim_urls)
    )
    return stack


async def run_baseline(stack: Stack, emails: list[str]) -> float:
    """People per second through the baseline workflow, all started at once."""
    started, finished = await deprovision_all(
        stack.temporal.address, stack.baseline_queue, stack.scim_urls, emails
    )
    return len(emails) / (finished - started)


def event(index: int, email: str) -> bytes:
    return json.dumps(
        {
            "event_id": f"evt-{uuid.uuid4().hex}",
            "type": "employee.terminated",
            "employee": {"id": f"B{index:06d}", "email": email, "name": email},
            "reason": "bench",
        }
    ).encode()


async def post_webhook(http: httpx.AsyncClient, index: int, email: str) -> tuple[int, str]:
    body = event(index, email)
    response = await http.post(
        "/api/v1/webhooks/hr",
        content=body,
        headers={"X-Offboard-Signature": sign(SECRET, body), "Content-Type": "application/json"},
    )
    run_id = response.json().get("run_id", "") if response.status_code == 202 else ""
    return response.status_code, run_id


def all_verified(run: dict[str, Any]) -> bool:
    return len(run["apps"]) == APPS and all(a["status"] == "verified" for a in run["apps"])


async def run_burst(stack: Stack, http: httpx.AsyncClient, first: int, n: int) -> dict[str, Any]:
    users = demo_users(first + n)[first:]
    gate = asyncio.Semaphore(64)
    accept_latencies: list[float] = []  # each webhook's POST sent -> 202 received

    async def send(i: int) -> tuple[int, str]:
        async with gate:  # timed inside: waiting for one of our 64 connections is the bench's
            sent = time.perf_counter()
            status, run_id = await post_webhook(http, first + i, users[i].email)
            if status == 202:
                accept_latencies.append(time.perf_counter() - sent)
            return status, run_id

    started = time.perf_counter()
    results = await asyncio.gather(*(send(i) for i in range(n)), return_exceptions=True)
    accepted = time.perf_counter() - started
    statuses = [r[0] if isinstance(r, tuple) else type(r).__name__ for r in results]
    run_ids = {r[1] for r in results if isinstance(r, tuple) and r[1]}
    # Poll for "the n-th completed run exists" (one row): rendering every run twice a second
    # would cost the API more CPU than the runs themselves at N=1,000. Then check them all.
    while True:
        await asyncio.sleep(0.5)
        page = await http.get(
            "/api/v1/offboardings", params={"status": "completed", "limit": 1, "offset": n - 1}
        )
        if page.json():
            break
    elapsed = time.perf_counter() - started
    page = await http.get("/api/v1/offboardings", params={"status": "completed", "limit": 5000})
    done = {r["run_id"] for r in page.json() if all_verified(r)} & run_ids
    if done != run_ids:
        raise RuntimeError(f"{len(run_ids - done)} runs completed without every app verified")
    return {
        "people": n,
        "accepted_s": accepted,
        "accept_latencies": accept_latencies,
        "elapsed_s": elapsed,
        "people_per_s": n / elapsed,
        "non_202": sum(1 for s in statuses if s != 202),
        "run_ids": sorted(run_ids),
    }


async def run_steady(
    stack: Stack, http: httpx.AsyncClient, first: int, rate: float, seconds: float
) -> list[float]:
    """Webhook accepted -> every app verified, per person. One watcher reads the newest
    completed runs every 0.1 s (as a dashboard would), only as far back as the oldest run
    still pending: reading every run each time, or each run on its own, put more load on the
    API (in the worker's process) than the runs themselves, and the latency measured itself."""
    n = int(rate * seconds)
    users = demo_users(first + n)[first:]
    latencies: list[float] = []
    accepted: dict[str, float] = {}  # in acceptance order, as the API lists them (newest first)
    order: list[str] = []
    sent = asyncio.Event()

    async def one(i: int) -> None:
        status, run_id = await post_webhook(http, first + i, users[i].email)
        if status != 202:
            latencies.append(float("inf"))
        else:
            accepted[run_id] = time.perf_counter()
            order.append(run_id)

    async def watch() -> None:
        while not (sent.is_set() and not accepted):
            if accepted:
                oldest = next(iter(accepted))
                # Runs accepted since the oldest pending one, plus slack for runs the API
                # lists a little out of acceptance order.
                depth = len(order) - order.index(oldest) + 20
                try:
                    page = await http.get(
                        "/api/v1/offboardings", params={"status": "completed", "limit": depth}
                    )
                except httpx.TransportError:  # a keep-alive connection the server just closed
                    continue
                now = time.perf_counter()
                for run in page.json():
                    if run["run_id"] in accepted and all_verified(run):
                        latencies.append(now - accepted.pop(run["run_id"]))
            # 0.1 s resolution: enough against a 0.5 s target.
            await asyncio.sleep(0.1)

    watcher = asyncio.create_task(watch())
    tasks = []
    for i in range(n):
        tasks.append(asyncio.create_task(one(i)))
        await asyncio.sleep(1 / rate)
    await asyncio.gather(*tasks)
    sent.set()
    await watcher
    return latencies


async def largest_history(stack: Stack, run_ids: list[str]) -> tuple[int, int]:
    from temporalio.client import Client

    client = await Client.connect(stack.temporal.address)
    events = size = 0
    for run_id in run_ids[:: max(1, len(run_ids) // 50)]:
        async for wf in client.list_workflows(f'RunId = "{run_id}"'):
            history = await client.get_workflow_handle(wf.id, run_id=run_id).fetch_history()
            events = max(events, len(history.events))
            size = max(size, sum(e.ByteSize() for e in history.events))
    return events, size


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def bench_size(n: int, steady_rate: float, steady_seconds: float) -> dict[str, Any]:
    steady_n = int(steady_rate * steady_seconds)
    stack = start_stack(FIRST_USER + 2 * n + steady_n)
    try:
        assert stack.offboard is not None
        users = demo_users(FIRST_USER + n)[FIRST_USER:]
        before = stack.cpu()
        baseline = await run_baseline(stack, [u.email for u in users])
        mid = stack.cpu()
        async with httpx.AsyncClient(
            base_url=stack.api,
            headers={"Authorization": f"Bearer {stack.token}"},
            timeout=60,
            limits=httpx.Limits(max_connections=64),
        ) as http:
            print(f"offboard burst of {n} (pid {stack.offboard.popen.pid})", flush=True)
            burst = await run_burst(stack, http, FIRST_USER + n, n)
            after = stack.cpu()
            latencies = (
                await run_steady(stack, http, FIRST_USER + 2 * n, steady_rate, steady_seconds)
                if steady_seconds > 0
                else []
            )
        events, size = await largest_history(stack, burst["run_ids"])
        return {
            "n": n,
            "baseline_pps": baseline,
            "offboard_pps": burst["people_per_s"],
            "ratio": burst["people_per_s"] / baseline,
            "non_202": burst["non_202"],
            "accept_s": burst["accepted_s"],
            "accept_latencies": burst["accept_latencies"],
            "steady": latencies,
            "cpu_ms": {
                phase: {k: 1000 * (end[k] - start[k]) / n for k in end if end[k] > start[k] + 0.05}
                for phase, (start, end) in (("baseline", (before, mid)), ("offboard", (mid, after)))
            },
            "rss_mb": rss_kib(stack.offboard.popen.pid)[1] / 1024,
            "history_events": events,
            "history_bytes": size,
        }
    finally:
        stack.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="200,1000")
    parser.add_argument("--steady-rate", type=float, default=5.0)
    parser.add_argument("--steady-seconds", type=float, default=60.0)
    args = parser.parse_args()
    rows = []
    for n in [int(s) for s in args.sizes.split(",")]:
        # Steady latency is measured once, on the largest stack.
        last = n == max(int(s) for s in args.sizes.split(","))
        row = asyncio.run(bench_size(n, args.steady_rate, args.steady_seconds if last else 0))
        rows.append(row)
        accepted = row["accept_latencies"]
        print(
            f"N={n:5d}  baseline {row['baseline_pps']:6.1f} people/s  "
            f"offboard {row['offboard_pps']:6.1f} people/s  ratio {row['ratio']:.2f}  "
            f"non-202 {row['non_202']}  webhooks accepted in {row['accept_s']:.1f} s "
            f"(each: p50 {pct(accepted, 0.5):.3f} s  p99 {pct(accepted, 0.99):.3f} s  "
            f"max {max(accepted):.3f} s)  "
            f"peak RSS api+worker {row['rss_mb']:.0f} MB  "
            f"largest history {row['history_events']} events / {row['history_bytes']} B",
            flush=True,
        )
        for phase, cost in row["cpu_ms"].items():
            parts = "  ".join(f"{k} {v:.0f}" for k, v in sorted(cost.items()))
            print(f"  CPU ms per person, {phase} burst: {parts}  total {sum(cost.values()):.0f}")
        if row["steady"]:
            lat = row["steady"]
            print(
                f"steady {args.steady_rate:g}/s for {args.steady_seconds:g} s "
                f"({len(lat)} people): p50 {pct(lat, 0.5):.2f} s  p95 {pct(lat, 0.95):.2f} s  "
                f"p99 {pct(lat, 0.99):.2f} s  max {max(lat):.2f} s  "
                f"mean {statistics.fmean(lat):.2f} s",
                flush=True,
            )
    if len(rows) > 1:
        growth = rows[-1]["rss_mb"] - rows[0]["rss_mb"]
        print(f"peak RSS growth N={rows[0]['n']} → N={rows[-1]['n']}: {growth:+.0f} MB")


if __name__ == "__main__":
    main()

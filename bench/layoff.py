"""A layoff against SaaS-like apps: each app at its own rate limit, none stuck; then the same
work by a hand-written Temporal workflow, for a ratio.

    python bench/layoff.py                      # N=150; apps at 600, 600 and 180 requests/min
    python bench/layoff.py --people 1000 --rates 600,600,180
    python bench/layoff.py --workers 2 --db postgres   # scale-out: PostgreSQL, API, 2 workers
    python bench/layoff.py --no-baseline        # offboard only

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
that timed out waiting for its turn would show here).

Then, once offboard and its apps are stopped, the baseline (bench/baseline.py: one activity
per app making the same requests, each request answered 429 sent again after its own
Retry-After, Temporal's default retry policy for the rest) deprovisions the same N people, all
started at once, on fresh apps (new processes, same users and rates, full token buckets). It
prints the ratio baseline finish ÷ offboard finish (above 1, offboard is faster), overall and
per app (each app's last admitted request), and the baseline's requests, 429s and early
requests per app. Figures only: nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.baseline import deprovision_all  # noqa: E402
from bench.burst import post_webhook  # noqa: E402
from bench.procs import Proc, catalog_app, spawn, spawn_baseline, spawn_offboard  # noqa: E402
from bench.scaleout import Deployment, Shares, worker_shares  # noqa: E402
from devstack.demo_data import demo_users  # noqa: E402
from devstack.ports import free_port  # noqa: E402
from devstack.temporal_server import TemporalDevServer  # noqa: E402

FIRST_USER = 100
BASELINE_QUEUE = "baseline"


@dataclass
class AppRun:
    """One app's side of a phase, read from its SaaS-like front (``GET /_stats``)."""

    rate: float  # its limit, requests/min
    requests: float  # admitted
    throttled: float  # answered 429
    early: float  # inside an announced Retry-After window, sent after the 429 had reached us
    in_flight: float  # inside the window, already on its way when the 429 went out
    took: float  # its last admitted request, seconds after the phase started
    achieved: float  # requests/min between its first and last admitted request

    @property
    def physical(self) -> float:
        """The app's physical limit for this work: its requests at its rate, in seconds."""
        return self.requests / (self.rate / 60)

    def describe(self, people: int) -> str:
        return (
            f"{self.requests:.0f} requests ({self.requests / people:.1f}/person), "
            f"{self.achieved:.0f}/min achieved, {self.throttled:.0f} x 429, "
            f"{self.early:.0f} early after a 429 ({self.in_flight:.0f} in flight)"
        )


def start_apps(
    workdir: Path, rates: list[float], people: int, name: str, procs: list[Proc]
) -> list[str]:
    """One SaaS-like fronted scim2-server per rate, each seeded with the same users and groups,
    appended to ``procs``; returns their SCIM base URLs."""
    urls = []
    for i, rate in enumerate(rates):
        port = free_port()
        size = str(FIRST_USER + people + 50)
        cmd = [sys.executable, str(ROOT / "bench/scim_app.py"), str(port), size, str(rate)]
        procs.append(spawn(cmd, workdir, f"{name}{i}"))
        urls.append(f"http://127.0.0.1:{port}/v2")
    return urls


def app_runs(urls: list[str], rates: list[float], started: float) -> list[AppRun]:
    """Each app's figures for a phase that started at ``started`` (Unix time)."""
    runs = []
    for url, rate in zip(urls, rates, strict=True):
        stats = httpx.get(url + "/_stats").json()
        span = max(stats["last"] - stats["first"], 1e-9)
        runs.append(
            AppRun(
                rate=rate,
                requests=stats["requests"],
                throttled=stats["throttled"],
                early=stats["early"],
                in_flight=stats["in_flight"],
                took=stats["last"] - started,
                achieved=stats["requests"] / span * 60,
            )
        )
    return runs


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


def print_offboard(people: int, finished: float, runs: list[AppRun]) -> None:
    """Offboard's finish, overall and per app, against each app's physical limit."""
    print(f"\nN = {people}: every run completed in {finished:.0f} s")
    for i, run in enumerate(runs):
        print(
            f"  app{i} ({run.rate:.0f}/min): {run.describe(people)}; finished {run.took:.0f} s "
            f"vs its limit {run.physical:.0f} s = {run.took / run.physical:.2f}x"
        )
    slowest = max(run.physical for run in runs)
    print(
        f"  overall {finished:.0f} s vs the slowest app's limit {slowest:.0f} s "
        f"= {finished / slowest:.2f}x"
    )


def compare_baseline(
    workdir: Path,
    address: str,
    rates: list[float],
    people: int,
    offboard: tuple[float, list[AppRun]],
    procs: list[Proc],
) -> None:
    """Run the baseline on fresh apps (its processes appended to ``procs``) and print its
    finish against ``offboard``'s (overall seconds, per-app figures)."""
    urls = start_apps(workdir, rates, people, "baseline-scim", procs)
    procs.append(spawn_baseline(workdir, address, BASELINE_QUEUE, urls))
    emails = [u.email for u in demo_users(FIRST_USER + people)[FIRST_USER:]]
    print(f"\nbaseline: {people} workflows started at once on fresh apps", flush=True)
    started, finished = asyncio.run(deprovision_all(address, BASELINE_QUEUE, urls, emails))
    took, runs = finished - started, app_runs(urls, rates, started)
    print(
        f"baseline: every workflow completed in {took:.0f} s; baseline ÷ offboard "
        f"= {took / offboard[0]:.2f} (above 1: offboard is faster)"
    )
    for i, (run, ours) in enumerate(zip(runs, offboard[1], strict=True)):
        print(
            f"  app{i} ({run.rate:.0f}/min): {run.describe(people)}; finished {run.took:.0f} s "
            f"vs offboard's {ours.took:.0f} s = {run.took / ours.took:.2f}"
        )


def interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--people", type=int, default=150)
    parser.add_argument("--rates", default="600,600,180", help="requests/min per app")
    parser.add_argument("--workers", type=int, default=1, help="worker processes")
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--no-baseline", action="store_true", help="skip the baseline phase")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, interrupt)  # stop every server on SIGTERM too
    rates = [float(r) for r in args.rates.split(",")]
    workdir = Path(tempfile.mkdtemp(prefix="offboard-layoff-"))
    temporal = TemporalDevServer(workdir / "temporal.db").start()
    procs: list[Proc] = []
    deployment: Deployment | None = None
    try:
        urls = start_apps(workdir, rates, args.people, "scim", procs)
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
        runs = app_runs(urls, rates, started)
        print_offboard(args.people, finished, runs)
        # Read before the baseline runs: its workflows would count in the tally.
        shares = asyncio.run(worker_shares(temporal.address))
        print_shares(shares, names)
        print(f"  activities that needed more than one attempt: {shares.retried}")
        if not args.no_baseline:
            # Sequential, not side by side: both would share the same cores.
            if deployment is not None:
                deployment.stop()
                deployment = None
            for proc in reversed(procs):
                proc.stop()
            compare_baseline(workdir, temporal.address, rates, args.people, (finished, runs), procs)
    finally:
        if deployment is not None:
            deployment.stop()
        for proc in reversed(procs):
            proc.stop()
        temporal.stop()


if __name__ == "__main__":
    main()
